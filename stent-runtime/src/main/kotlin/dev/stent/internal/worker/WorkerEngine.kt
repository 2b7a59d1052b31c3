package dev.stent.internal.worker

import dev.stent.Stent
import dev.stent.StentStoreException
import dev.stent.WorkerConfig
import dev.stent.internal.WakeUp
import dev.stent.internal.engine.RunExecution
import dev.stent.internal.engine.RunThread
import dev.stent.internal.engine.StopReason
import dev.stent.store.ClaimRequest
import kotlinx.coroutines.CoroutineExceptionHandler
import kotlinx.coroutines.CoroutineName
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.joinAll
import kotlinx.coroutines.launch
import kotlinx.coroutines.selects.onTimeout
import kotlinx.coroutines.selects.select
import kotlinx.coroutines.withTimeoutOrNull
import org.slf4j.LoggerFactory
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * The worker's machinery: a claim loop, a heartbeat loop and one coroutine per claimed run, all
 * in one supervisor scope owned by the worker.
 */
internal class WorkerEngine(val stent: Stent, val config: WorkerConfig) {
    val id: String = config.workerId
    val access = stent.access
    val notifier = stent.notifier
    val log = LoggerFactory.getLogger("dev.stent.worker")

    private val scope = CoroutineScope(
        SupervisorJob() + Dispatchers.Default + CoroutineName("stent-worker-$id") +
            CoroutineExceptionHandler { _, e -> log.error("stent worker {}: unexpected error", id, e) },
    )

    /** Runs this worker executes; written by the claim loop, removed by each run when it ends. */
    private val active = ConcurrentHashMap<String, RunExecution>()
    private val slotFreed = WakeUp()
    private val stopping = AtomicBoolean(false)
    private var claimJob: Job? = null
    private var heartbeatJob: Job? = null

    /** Database clock minus local clock, measured at each claim and heartbeat. */
    @Volatile
    private var clockOffsetMs = 0L

    val activeCount: Int get() = active.size

    /** The database clock, estimated from the local clock and the last measured offset. */
    fun nowMs(): Long = System.currentTimeMillis() + clockOffsetMs

    private fun observeDbClock(dbNowMs: Long, before: Long, after: Long) {
        clockOffsetMs = dbNowMs - (before + after) / 2
    }

    fun start() {
        claimJob = scope.launch(CoroutineName("stent-claim-$id")) { claimLoop() }
        heartbeatJob = scope.launch(CoroutineName("stent-heartbeat-$id")) { heartbeatLoop() }
    }

    private suspend fun claimLoop() {
        val names = config.definitions.keys.toList()
        val queues = config.queues?.toList()
        var idle = MIN_POLL
        while (!stopping.get()) {
            val armedWork = notifier.workAvailable.arm()
            val armedSlot = slotFreed.arm()
            val free = config.concurrency - active.size
            var claimed = 0
            var nextReadyAt: Long? = null
            if (free > 0) {
                try {
                    val before = System.currentTimeMillis()
                    val result = access.call("claiming runs") {
                        claim(ClaimRequest(id, names, queues ?: emptyList(), free, config.leaseDuration.inWholeMilliseconds))
                    }
                    observeDbClock(result.dbNowMs, before, System.currentTimeMillis())
                    for (run in result.runs) launchRun(run)
                    claimed = result.runs.size
                    nextReadyAt = result.nextReadyAt
                } catch (e: StentStoreException) {
                    log.warn("stent worker {}: claim failed, retrying: {}", id, e.message)
                }
            }
            if (claimed > 0) idle = MIN_POLL
            // Sleep until woken, until the next known timer is due, or for the back-off: the safety net
            // for work written by other processes without a wake-up channel.
            val untilTimer = nextReadyAt?.let { (it - nowMs()).coerceAtLeast(1).milliseconds }
            val pause = if (untilTimer != null && untilTimer < idle) untilTimer else idle
            val woken = select {
                if (free > 0) armedWork.onAwait { true }
                armedSlot.onAwait { true }
                onTimeout(pause) { false }
            }
            idle = if (woken) MIN_POLL else (idle * 2).coerceAtMost(config.pollInterval)
            if (woken) gatherSlots()
        }
    }

    /**
     * When runs finish one by one, waits a moment for a few more slots, so a busy worker claims in
     * batches instead of one claim transaction per finished run.
     */
    private suspend fun gatherSlots() {
        val batch = (config.concurrency / 8).coerceAtLeast(1)
        withTimeoutOrNull(GATHER) {
            while (config.concurrency - active.size in 1 until batch) slotFreed.arm().await()
        }
    }

    private fun launchRun(claimed: dev.stent.store.ClaimedRun) {
        val execution = RunExecution(this, claimed)
        active[claimed.id] = execution
        val job = scope.launch(runDispatcher() + RunThread.element + CoroutineName("stent-run-${claimed.id}"), start = CoroutineStart.LAZY) {
            try {
                execution.execute()
            } finally {
                active.remove(claimed.id, execution)
                slotFreed.fire()
            }
        }
        execution.job = job
        job.start()
    }

    /**
     * One serial view of the IO pool per run: a run's coroutines never run on two threads at once,
     * and its checkpoints block its own thread instead of hopping to the store dispatcher.
     */
    private fun runDispatcher() = Dispatchers.IO.limitedParallelism(1)

    private suspend fun heartbeatLoop() {
        var lastOk = System.currentTimeMillis()
        while (true) {
            delay(config.heartbeatInterval)
            val snapshot = active.values.toList()
            if (snapshot.isEmpty()) {
                lastOk = System.currentTimeMillis()
                continue
            }
            if (System.currentTimeMillis() - lastOk > config.leaseDuration.inWholeMilliseconds) {
                // no renewal for a whole lease: others may own these runs now; stop writing for them
                snapshot.forEach { it.stop(StopReason.LeaseLost) }
            }
            try {
                val before = System.currentTimeMillis()
                val result = access.call("renewing leases") { heartbeat(id, snapshot.map { it.runId }, config.leaseDuration.inWholeMilliseconds) }
                observeDbClock(result.dbNowMs, before, System.currentTimeMillis())
                lastOk = before
                val held = result.leases.associateBy { it.runId }
                for (execution in snapshot) {
                    val lease = held[execution.runId]
                    when {
                        lease == null || lease.token != execution.token -> execution.stop(StopReason.LeaseLost)
                        lease.cancelRequested -> execution.stop(StopReason.Cancel)
                    }
                }
            } catch (e: StentStoreException) {
                log.warn("stent worker {}: heartbeat failed: {}", id, e.message)
            }
        }
    }

    suspend fun shutdown(grace: Duration) {
        if (!stopping.compareAndSet(false, true)) {
            scope.coroutineContext[Job]?.join()
            return
        }
        claimJob?.cancelAndJoin()
        withTimeoutOrNull(grace) {
            while (active.isNotEmpty()) {
                val armed = slotFreed.arm()
                if (active.isEmpty()) break
                select { armed.onAwait {}; onTimeout(100.milliseconds) {} }
            }
        }
        val remaining = active.values.toList()
        remaining.forEach { it.stop(StopReason.Shutdown) }
        withTimeoutOrNull(30.seconds) { remaining.mapNotNull { it.job }.joinAll() }
        heartbeatJob?.cancelAndJoin()
        scope.cancel()
        scope.coroutineContext[Job]?.join()
    }

    private companion object {
        val MIN_POLL = 10.milliseconds
        val GATHER = 2.milliseconds
    }
}
