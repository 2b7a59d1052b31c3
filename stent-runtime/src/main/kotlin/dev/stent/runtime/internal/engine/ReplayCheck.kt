@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent.runtime.internal.engine

import dev.stent.DuplicateStepIdException
import dev.stent.NonDeterminismException
import dev.stent.RecordKind
import dev.stent.ReplayProblem
import dev.stent.ReplayReport
import dev.stent.RunHistory
import dev.stent.RunStatus
import dev.stent.StentException
import dev.stent.StentWorker
import dev.stent.WorkflowDefinition
import dev.stent.runtime.internal.LocalNotifier
import dev.stent.runtime.internal.StoreAccess
import dev.stent.store.ClaimedRun
import dev.stent.store.StoredRecord
import dev.stent.store.WorkflowStore
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.cancel
import kotlinx.coroutines.sync.Semaphore
import org.slf4j.LoggerFactory
import java.lang.reflect.Proxy
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.coroutines.CoroutineContext

/** Where a replay check stopped: the calls the code reached that the history has no record for. */
internal class ReplayFrontier {
    private val calls = ConcurrentLinkedQueue<Pair<String, RecordKind?>>()

    fun reached(call: String, id: String?, kind: RecordKind?) {
        calls += (if (id != null) "$call '$id'" else call) to kind
    }

    val reached: List<String> get() = calls.map { it.first }

    /** The kind of record the first call that went beyond the history would have written, if any. */
    val firstKind: RecordKind? get() = calls.firstOrNull()?.second
}

/**
 * The replayer: runs the real engine ([RunExecution], [WorkflowScopeImpl]) over a history with
 * [RunEnvironment.replayOnly] set, on a dispatcher it drains on the calling thread, until the body
 * ends, or a branch stopped at the history's frontier and nothing has run for [QUIET_MS] (the
 * others wait too), or [MAX_MS] pass.
 */
internal object ReplayCheck {
    private const val QUIET_MS = 50L
    private const val MAX_MS = 30_000L
    private val log = LoggerFactory.getLogger("dev.stent.replayer")

    fun check(definition: WorkflowDefinition<*, *>, history: RunHistory): ReplayReport {
        if (definition.name != history.workflowName) {
            val message = "history of run '${history.runId}' is of workflow '${history.workflowName}', not '${definition.name}'"
            return ReplayReport(history.runId, history.workflowName, listOf(ReplayProblem(message, null, null, null)), emptyList())
        }
        val loop = DrainedDispatcher()
        val frontier = ReplayFrontier()
        val config = StentWorker.Builder().apply { register(definition) }.build()
        val env = RunEnvironment(
            config = config,
            access = StoreAccess(noStore, dispatcher = loop),
            notifier = LocalNotifier(),
            maxPayloadBytes = Int.MAX_VALUE,
            clock = object : EngineClock {
                // the history's own time: timers due when it was exported have passed
                override fun nowMs() = history.exportedAt
                override fun nanoTime() = 0L
            },
            runDispatcher = { loop },
            timerDispatcher = loop,
            stepDispatcher = loop,
            stepPermits = Semaphore(1),
            slots = NoSlots,
            log = log,
            lastRenewalNanos = { 0L },
            onStopped = {},
            replayOnly = frontier,
        )
        val records = history.records.map { StoredRecord(it.id, it.kind, it.status, it.result, it.failure, it.attempts, it.wakeAt, createdAt = it.createdAt) }
        val execution = RunExecution(env, ClaimedRun(history.runId, history.workflowName, history.input, 0, 1, records), 0L)
        val scope = CoroutineScope(loop + SupervisorJob())
        val body = scope.async { execution.replayBody(definition) }
        val settled = loop.drain(QUIET_MS, MAX_MS, done = { body.isCompleted }, quietEnough = { frontier.reached.isNotEmpty() })
        val ended = body.isCompleted
        scope.cancel()
        // the stopped branches unwind here, and on a pool thread once the check is over (a Java body still busy)
        loop.drain(QUIET_MS, QUIET_MS * 10, done = { body.isCompleted }, quietEnough = { true })
        loop.close()
        if (!settled) {
            val message = "the replay of run '${history.runId}' neither finished nor stopped at a call beyond its history within ${MAX_MS / 1000} s: " +
                "does the workflow code wait for something other than Stent calls?"
            return ReplayReport(history.runId, history.workflowName, listOf(ReplayProblem(message, null, null, null)), frontier.reached)
        }
        val outcome = if (ended) runCatching {
            @OptIn(ExperimentalCoroutinesApi::class)
            body.getCompleted()
        }.getOrNull() else null
        return ReplayReport(history.runId, history.workflowName, problems(execution, history, outcome, frontier), frontier.reached)
    }

    private fun problems(execution: RunExecution, history: RunHistory, outcome: Outcome?, frontier: ReplayFrontier): List<ReplayProblem> {
        val replay = execution.replay
        replay.fatal?.let { return listOf(problem(it)) }
        if (outcome != null && outcome !is Outcome.Stopped) {
            replay.verdict()?.let { return listOf(problem(it)) }
            val recorded = ended(history) ?: return emptyList()
            val now = when (outcome) {
                is Outcome.Completed -> "completes"
                is Outcome.Continued -> "continues as new"
                is Outcome.Failed -> "fails (${outcome.failure})"
                is Outcome.Stopped -> return emptyList()
            }
            val same = (recorded == "completed" && outcome is Outcome.Completed) || (recorded == "continued as new" && outcome is Outcome.Continued) ||
                (recorded == "failed" && outcome is Outcome.Failed)
            return if (same) emptyList() else listOf(ReplayProblem("the recorded run $recorded, but the code now $now", null, "run $recorded", now))
        }
        val next = frontier.reached.firstOrNull() ?: "waits"
        firstUnreached(replay.unreached(), frontier.firstKind)?.let { r ->
            val recorded = "a ${kindName(r)} '${r.stepId}'"
            val actual = "calls $next first, which the history does not have, and never reaches it"
            return listOf(ReplayProblem("recorded $recorded, but the code now $actual", r.stepId, recorded, actual))
        }
        val recorded = ended(history)
        if (recorded != null) {
            return listOf(ReplayProblem("the recorded run $recorded, but the code now goes on: it calls $next", null, "run $recorded", "calls $next"))
        }
        return emptyList()
    }

    /**
     * The record the code skipped: the oldest unreached one; among records written in the same
     * millisecond (their order is not stored), one of the kind the code calls instead, as a renamed step is.
     */
    private fun firstUnreached(unreached: List<StoredRecord>, kind: RecordKind?): StoredRecord? {
        val oldest = unreached.firstOrNull() ?: return null
        return unreached.takeWhile { it.createdAt == oldest.createdAt }.firstOrNull { it.kind == kind } ?: oldest
    }

    /** How the recorded run ended, or null when it had not (or was cancelled, which stops it anywhere). */
    private fun ended(history: RunHistory): String? = when (history.status) {
        RunStatus.COMPLETED -> if (history.continuedAs != null) "continued as new" else "completed"
        RunStatus.FAILED -> "failed"
        else -> null
    }

    private fun kindName(r: StoredRecord) = r.kind.name.lowercase()

    private fun problem(e: StentException): ReplayProblem = when (e) {
        is NonDeterminismException -> ReplayProblem(e.message ?: "non-determinism", e.stepId, e.recorded, e.actual)
        is DuplicateStepIdException -> ReplayProblem(e.message ?: "duplicate step id", e.stepId, null, "calls '${e.stepId}' twice")
        else -> ReplayProblem(e.message ?: e.toString(), e.stepId, null, null)
    }

    /** A replay check touches no database: a call here is a bug of the replayer, and says so. */
    private val noStore: WorkflowStore = Proxy.newProxyInstance(WorkflowStore::class.java.classLoader, arrayOf(WorkflowStore::class.java)) { _, m, _ ->
        throw IllegalStateException("a replay check does not use a database, but the engine called ${m.name}")
    } as WorkflowStore

    private object NoSlots : RunSlots {
        override suspend fun acquire() = Unit
        override fun release() = Unit
        override fun parked(run: RunExecution) = Unit
        override fun unparked(run: RunExecution) = Unit
    }
}

/** Runs what is dispatched to it on the thread that calls [drain]; once [close]d, on the default pool. */
private class DrainedDispatcher : CoroutineDispatcher() {
    private val tasks = LinkedBlockingQueue<Runnable>()

    // guarded by this: a task is queued only while open, so close() hands on every one
    private var closed = false

    override fun dispatch(context: CoroutineContext, block: Runnable) {
        val queued = synchronized(this) { !closed && tasks.add(block) }
        if (!queued) Dispatchers.Default.dispatch(context, block)
    }

    /**
     * Runs tasks until [done]; or until none has come for [quietMs] and [quietEnough] (every
     * coroutine waits); or [maxMs] pass. True unless it gave up at [maxMs].
     */
    fun drain(quietMs: Long, maxMs: Long, done: () -> Boolean, quietEnough: () -> Boolean): Boolean {
        val deadline = System.nanoTime() + maxMs * 1_000_000
        while (!done()) {
            if (System.nanoTime() - deadline > 0) return false
            val task = tasks.poll(quietMs, TimeUnit.MILLISECONDS)
            when {
                task != null -> task.run()
                quietEnough() -> return true
            }
        }
        return true
    }

    /** Hands what is still queued, and what comes later, to the default pool: nothing waits for this thread any more. */
    fun close() {
        val left = synchronized(this) {
            closed = true
            ArrayList<Runnable>().also { tasks.drainTo(it) }
        }
        left.forEach { Dispatchers.Default.dispatch(kotlin.coroutines.EmptyCoroutineContext, it) }
    }
}
