package dev.stent.runtime.internal.engine

import dev.stent.Failure
import dev.stent.FailureKind
import dev.stent.InternalStentApi
import dev.stent.RecordKind
import dev.stent.RunStatus
import dev.stent.StentEvent
import dev.stent.StentException
import dev.stent.StentStoreException
import dev.stent.WorkflowDefinition
import dev.stent.runtime.internal.PayloadSite
import dev.stent.runtime.internal.decodeFailure
import dev.stent.runtime.internal.decodePayload
import dev.stent.runtime.internal.encodeFailure
import dev.stent.runtime.internal.encodePayload
import dev.stent.store.ClaimedRun
import dev.stent.store.ContinueAs
import dev.stent.store.FinishWrite
import dev.stent.store.LeaseLostException
import dev.stent.store.StoredRecord
import dev.stent.store.UnloadOutcome
import dev.stent.store.WriteOutcome
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong
import java.util.concurrent.atomic.AtomicReference
import kotlin.concurrent.withLock
import kotlin.time.Duration.Companion.milliseconds

/** Marks coroutines running on a run's own serial IO view, where blocking store calls may run inline. */
internal class RunThread private constructor() : kotlin.coroutines.AbstractCoroutineContextElement(Key) {
    companion object Key : kotlin.coroutines.CoroutineContext.Key<RunThread> {
        val element = RunThread()
    }
}

/** Why a run stopped before its body finished. */
internal sealed class StopReason {
    /** Every branch waits durably and the earliest wake-up is far: write the run back as WAITING. */
    class Unload(val wakeAtMs: Long?, val signalNames: Set<String>) : StopReason() {
        override fun toString() = "unload(wakeAt=$wakeAtMs, signals=$signalNames)"
    }

    /** Another worker owns the run now: stop without writing. */
    object LeaseLost : StopReason() { override fun toString() = "lease lost" }

    /** A client cancelled the run. */
    object Cancel : StopReason() { override fun toString() = "cancel requested" }

    /** The run's deadline passed: it is cancelled, with the deadline recorded as the reason. */
    class Deadline(val atMs: Long) : StopReason() {
        override fun toString() = "deadline ${java.time.Instant.ofEpochMilli(atMs)} passed"
    }

    /** The worker shuts down: give the lease back. */
    object Shutdown : StopReason() { override fun toString() = "worker shutdown" }

    /** The database failed under the run: give the lease back with a back-off if it can, else let it expire. */
    object StoreFailure : StopReason() { override fun toString() = "database failure" }

    /** True when a step body may be blocked at the moment of the stop, so the worker watches for it to unwind. */
    val mayFindBodyBusy: Boolean get() = this !is Unload
}

/** Thrown by `continueAsNew`: unwinds the body; the run continues as new even if the code catches it. */
internal class ContinueAsNewRequest(runId: String) :
    RuntimeException("run '$runId' continues as new; this exception ends the workflow body (do not catch it)", null, false, false)

/** Cancels a run's coroutines; never escapes the run. */
internal class RunStopped(val reason: StopReason) : CancellationException("run stopped: $reason")

/** The end of a run's body. */
internal sealed class Outcome {
    class Completed(val output: String) : Outcome()
    class Failed(val failure: Failure) : Outcome()

    /** The code called `continueAsNew`: finish, and start the next run of the chain with [input] (encoded). */
    class Continued(val input: String) : Outcome()
    class Stopped(val reason: StopReason) : Outcome()
}

/**
 * One claimed run, executed by replay in three phases: [execute] runs the body against the
 * records loaded at claim ([WorkflowScopeImpl] memoizes steps and waits), then applies the
 * outcome with one fenced write: finish, unload, release or nothing.
 *
 * The outcome is applied once ([settle]): by [execute] when the body ends, or by the worker when
 * a stopped run's body ignores interruption past the worker's stop timeout (the run is then
 * abandoned: its body may go on, but nothing it returns is recorded).
 */
@OptIn(InternalStentApi::class)
internal class RunExecution(
    val env: RunEnvironment,
    private val claimed: ClaimedRun,
    /** When the claim that took this run started (System.nanoTime): its lease is at least as fresh as that. */
    private val claimedAtNanos: Long,
) {
    val runId: String = claimed.id
    val fencingToken: Long = claimed.fencingToken
    val workflowName: String = claimed.workflowName
    val replay = Replay(claimed.id, claimed.workflowName, claimed.records)
    val state = RunState()

    /** True while this run holds one of the worker's execution slots. */
    private val holdsSlot = AtomicBoolean(false)

    /** Orders parking and taking the slot again between the run's branches. */
    private val slotLock = Mutex()

    /** The timer of the run's deadline, a child of the body's scope that is the engine's, not a branch of the workflow. */
    @Volatile
    var deadlineJob: Job? = null

    /** The run's coroutine scope while its body runs (evictions are decided there). */
    @Volatile
    private var scope: CoroutineScope? = null

    /** True while reads of the run show it WAITING (a park written to the store). */
    @Volatile
    private var parkShown = false

    /** Set once the run started (or replayed the start of) a child: its finish cancels attached children left running. */
    @Volatile
    var startedChildren = false

    /** The encoded input of the next run, once the code called `continueAsNew` (the first call wins). */
    private val continuation = AtomicReference<String?>(null)

    /** Records that the code called `continueAsNew` with [input]; returns what to throw. */
    fun continueAsNew(input: String): ContinueAsNewRequest {
        continuation.compareAndSet(null, input)
        return ContinueAsNewRequest(runId)
    }

    /** Runs the body of [definition] only, without applying the outcome: a replay check. */
    suspend fun <I, O> replayBody(definition: WorkflowDefinition<I, O>): Outcome = runBody(definition)

    /** Step bodies of this run executing at once ([dev.stent.WorkerConfig.maxParallelStepsPerRun]). */
    val stepPermits = Semaphore(env.config.maxParallelStepsPerRun)

    /** Set once by the claim loop before the job starts. */
    @Volatile
    var job: Job? = null

    /** First stop reason wins. */
    private val stopReason = AtomicReference<StopReason?>(null)

    /** Set by whoever applies the outcome: the run itself, or the worker abandoning it. */
    private val settled = AtomicBoolean(false)

    /** Hears this JVM's cancel requests for the run; registered and removed by identity. */
    private val cancelHandler: (String) -> Unit = { stop(StopReason.Cancel) }

    /**
     * True when neither the claim nor a heartbeat has renewed the lease within a lease duration of
     * [nowNanos] (monotonic time, which goes on while the process is frozen): another worker may own
     * the run now.
     */
    fun leaseMayBeGone(nowNanos: Long = env.clock.nanoTime()): Boolean =
        nowNanos - maxOf(env.lastRenewalNanos(), claimedAtNanos) > env.config.leaseDuration.inWholeNanoseconds

    /** Before a step body starts: a run whose lease may be gone (a frozen worker, resumed) stops instead of running it. */
    fun checkLease() {
        if (leaseMayBeGone()) throw lost()
    }

    /** Store calls in flight for this run: call number to its start (System.nanoTime), so the heartbeat can spot one that hangs. */
    private val storeCalls = ConcurrentHashMap<Long, Long>()
    private val callNumbers = AtomicLong()

    fun stop(reason: StopReason) {
        if (stopReason.compareAndSet(null, reason)) {
            job?.cancel(RunStopped(reason))
            if (reason.mayFindBodyBusy) env.onStopped(this)
        }
    }

    val isStopping: Boolean get() = stopReason.get() != null

    /** Why the run was stopped, or null while it runs. */
    val stopReasonNow: StopReason? get() = stopReason.get()

    /** True once the outcome is being applied; only the first caller gets true. */
    fun settle(): Boolean = settled.compareAndSet(false, true)

    suspend fun execute() {
        env.notifier.onCancel(runId, cancelHandler)
        try {
            val deadline = claimed.deadlineAtMs
            val stoppedEarly = stopReason.get()
            val outcome = when {
                stoppedEarly != null -> Outcome.Stopped(stoppedEarly) // stopped before it began (a heartbeat, a shutdown)
                claimed.cancelRequested -> Outcome.Stopped(StopReason.Cancel)
                deadline != null && deadline <= env.clock.nowMs() -> Outcome.Stopped(StopReason.Deadline(deadline))
                claimed.claimCount > env.config.maxClaims -> Outcome.Failed(poisonFailure())
                else -> {
                    @Suppress("UNCHECKED_CAST")
                    runBody(env.config.definitions.getValue(workflowName) as WorkflowDefinition<Any?, Any?>)
                }
            }
            if (settle()) withContext(NonCancellable) { apply(outcome) }
        } finally {
            forgetCancelHandler()
            releaseSlot()
            env.slots.unparked(this)
        }
    }

    /** Stops hearing this JVM's cancel requests (the run ended, or was abandoned). */
    fun forgetCancelHandler() = env.notifier.removeCancel(runId, cancelHandler)

    /** The claim loop reserved a slot for this run before claiming it. */
    fun grantSlot() = holdsSlot.set(true)

    /** Gives the slot back (once); also called by the worker when it abandons the run. */
    fun releaseSlot() {
        if (holdsSlot.compareAndSet(true, false)) env.slots.release()
    }

    /**
     * Before the run does work (a step, a checkpoint, workflow code after a wait): makes sure it
     * holds an execution slot, taking one again after a park (after the runs that resumed before
     * it), and ends a park mark reads show. Callers are inside a busy section, so the run cannot
     * park or unload meanwhile.
     */
    suspend fun ensureSlot() {
        if (holdsSlot.get() && !parkShown) return
        slotLock.withLock {
            if (!holdsSlot.get()) {
                // a stopped run does not queue for a slot
                stopReason.get()?.let { throw RunStopped(it) }
                env.slots.unparked(this)
                env.slots.acquire()
                holdsSlot.set(true)
                // stopped meanwhile (an abandoned run's branch returning from a store call): nothing more to run
                stopReason.get()?.let { reason ->
                    releaseSlot()
                    throw RunStopped(reason)
                }
            }
            if (parkShown) {
                parkShown = false
                if (storeCall("marking run '$runId' running") { unpark(runId, fencingToken) } == WriteOutcome.LEASE_LOST) throw lost()
            }
        }
    }

    /**
     * Every branch waits in memory until [untilMs] (near): the run gives its execution slot back, so
     * a wait is not work. A wait long enough to be seen is written to the store, so reads show the
     * run WAITING until it goes on. [decide] decides again under the slot lock; only a [Quiescence.Stay] parks.
     */
    suspend fun park(decide: () -> Quiescence) {
        slotLock.withLock {
            if (!holdsSlot.get()) return
            val stay = decide() as? Quiescence.Stay ?: return
            if (stay.wakeAtMs - env.clock.nowMs() >= PARK_SHOWN_MS) {
                val written = storeCall("marking run '$runId' waiting") { park(runId, fencingToken, stay.wakeAtMs, stay.signalNames) }
                if (written == WriteOutcome.LEASE_LOST) throw lost()
                parkShown = true
            }
            env.listeners.emit {
                StentEvent.RunWaiting(
                    runId, workflowName, java.time.Instant.ofEpochMilli(stay.wakeAtMs), stay.signalNames, unloaded = false, execution = fencingToken,
                )
            }
            releaseSlot()
            env.slots.parked(this)
        }
    }

    /**
     * The worker bounds how many runs wait in memory: unloads this one if every branch still waits,
     * whatever the threshold. Decided on the run's own dispatcher, where no branch can move on
     * between the decision and the stop.
     */
    fun evict() {
        scope?.launch {
            val decision = state.quiescence(env.clock.nowMs(), Long.MIN_VALUE) as? Quiescence.Unload ?: return@launch
            stop(StopReason.Unload(decision.wakeAtMs, decision.signalNames))
        }
    }

    private suspend fun <I, O> runBody(definition: WorkflowDefinition<I, O>): Outcome {
        val maxBytes = env.maxPayloadBytes
        return try {
            ensureSlot() // in the try: a stop while waiting for a slot is applied like any other
            val input = decodePayload(definition.inputCodec, claimed.input, PayloadSite("input", runId, workflowName))
            val output = coroutineScope {
                scope = this
                // on the default dispatcher: the run's own thread may be blocked by a step body when the deadline passes
                val deadlineTimer = claimed.deadlineAtMs?.let { at ->
                    launch(env.timerDispatcher) {
                        delay((at - env.clock.nowMs()).coerceAtLeast(0).milliseconds)
                        stop(StopReason.Deadline(at))
                    }
                }
                deadlineJob = deadlineTimer
                try {
                    definition.body.invoke(WorkflowScopeImpl(this@RunExecution, definition, this), input)
                } finally {
                    deadlineTimer?.cancel()
                }
            }
            replay.fatal?.let { return Outcome.Failed(Failure.of(it)) }
            continuation.get()?.let { return Outcome.Continued(it) }
            replay.verdict()?.let { return Outcome.Failed(Failure.of(it)) }
            Outcome.Completed(encodePayload(definition.outputCodec, output, maxBytes, PayloadSite("output", runId, workflowName)))
        } catch (e: Throwable) {
            val reason = stopReason.get()
            when {
                reason != null -> Outcome.Stopped(reason)
                e is CancellationException && !currentCoroutineContext().isActive -> Outcome.Stopped(StopReason.Shutdown)
                e is Error && e !is StackOverflowError && e !is AssertionError -> throw e
                replay.fatal == null && continuation.get() != null -> Outcome.Continued(continuation.get()!!)
                else -> Outcome.Failed(Failure.of(replay.fatal ?: e))
            }
        }
    }

    private fun poisonFailure() = Failure(
        FailureKind.POISON_TYPE,
        "run '$runId' of workflow '$workflowName' was claimed ${claimed.claimCount} times without finishing " +
            "(its worker died, lost the lease or could not write each time); the poison guard (maxClaims=${env.config.maxClaims}) failed it. " +
            "Inspect it with describe(), fix the cause, then retry it with client.retry(\"$runId\") (its finished steps are kept)",
    )

    /**
     * Applies [outcome] with one fenced write (or none). A failed write gives the run back with a back-off when
     * [mayRelease] (not for an abandoned run, whose body may still be going: it waits for its lease to expire).
     */
    suspend fun apply(outcome: Outcome, mayRelease: Boolean = true) {
        // every write here is tracked like a checkpoint: one that hangs for a lease stops the run's renewal
        try {
            // a run given back keeps the steps it completed: the checkpoints taken for later are written first (fenced:
            // a lease that may be gone, a frozen worker's, may still be this run's)
            val reason = (outcome as? Outcome.Stopped)?.reason
            // the database failed under the run: its completed steps are kept if it answers now
            if (reason === StopReason.StoreFailure && keepUnwritten() == WriteOutcome.LEASE_LOST) return leaseLost()
            if (reason is StopReason.Unload || reason === StopReason.Shutdown || reason === StopReason.LeaseLost) {
                if (blockingOnRunThread("checkpointing run '$runId'") { drainUnwritten() } == WriteOutcome.LEASE_LOST && reason !== StopReason.LeaseLost) {
                    return leaseLost()
                }
            }
            when (outcome) {
                is Outcome.Completed -> finish(RunStatus.COMPLETED, outcome.output, null)
                is Outcome.Continued -> {
                    val timeout = env.config.definitions[workflowName]?.timeout?.let { dev.stent.TimeMath.delayMs(it) }
                    finish(RunStatus.COMPLETED, null, null, ContinueAs(ContinueAs.nextId(runId), outcome.input, timeout))
                }
                is Outcome.Failed -> {
                    // a run that failed for good needs someone: WARN is what operators filter on
                    env.log.warn("run {} of workflow {} failed: {}", runId, workflowName, outcome.failure)
                    finish(RunStatus.FAILED, null, encodeFailure(outcome.failure))
                }
                is Outcome.Stopped -> when (val reason = outcome.reason) {
                    is StopReason.Unload -> {
                        // the deadline is a timer too: an unloaded run is claimed again when it passes
                        val wakeAt = listOfNotNull(reason.wakeAtMs, claimed.deadlineAtMs).minOrNull()
                        val result = blockingOnRunThread("unloading run '$runId'") { unload(runId, fencingToken, wakeAt, reason.signalNames) }
                        if (result == UnloadOutcome.WAITING) {
                            env.listeners.emit {
                                StentEvent.RunWaiting(
                                    runId, workflowName, wakeAt?.let(java.time.Instant::ofEpochMilli), reason.signalNames, unloaded = true,
                                    execution = fencingToken,
                                )
                            }
                        }
                        when (result) {
                            UnloadOutcome.READY -> {
                                env.notifier.workAvailable.fire()
                                released("a signal or timer came due while it unloaded")
                            }
                            UnloadOutcome.CANCELLED -> {
                                env.notifier.runFinished(runId)
                                finished(RunStatus.CANCELLED, null)
                            }
                            UnloadOutcome.LEASE_LOST -> leaseLost()
                            UnloadOutcome.WAITING -> Unit
                        }
                    }
                    StopReason.Cancel -> finish(RunStatus.CANCELLED, null, null)
                    is StopReason.Deadline -> finish(RunStatus.CANCELLED, null, encodeFailure(deadlineFailure(reason.atMs)))
                    StopReason.Shutdown -> {
                        blockingOnRunThread("releasing run '$runId'") { release(runId, fencingToken) }
                        env.notifier.workAvailable.fire()
                        released("the worker shuts down")
                    }
                    StopReason.StoreFailure -> {
                        val backOff = failureBackOffMs(claimed.claimCount)
                        env.log.warn("run {}: stopped by a database failure; released, to be claimed again in {} ms", runId, backOff)
                        blockingOnRunThread("releasing run '$runId' after a database failure") { release(runId, fencingToken, backOff) }
                        released("a database failure")
                    }
                    StopReason.LeaseLost -> {
                        env.log.warn("run {}: lease lost; another worker resumes it", runId)
                        leaseLost()
                    }
                }
            }
        } catch (e: StentException) {
            // given back with a back-off, as after a failed checkpoint (a finish may carry one); fenced, so a write that
            // committed although its reply was lost keeps the run as it ended
            val backOff = failureBackOffMs(claimed.claimCount)
            val given = mayRelease && try {
                blockingOnRunThread("releasing run '$runId' after a failed write") { release(runId, fencingToken, backOff) } == WriteOutcome.OK
            } catch (again: StentException) {
                false
            }
            env.log.warn(
                "run {}: could not record its outcome ({}); {}", runId, e.message,
                if (given) "released, to be claimed again in $backOff ms" else "its lease will expire and another claim resumes it",
            )
            released("its outcome could not be recorded")
        } catch (e: LeaseLostException) {
            env.log.warn("run {}: lease lost before its outcome was recorded", runId)
            leaseLost()
        } finally {
            // this execution is over: nothing it took for later is written after its outcome
            writing.withLock { unwritten.clear() }
        }
    }

    /** Tells listeners the run was given back unfinished (also for a run the worker abandons). */
    fun released(reason: String) = env.listeners.emit { StentEvent.RunReleased(runId, workflowName, env.workerId, reason, fencingToken) }

    fun leaseLost() = env.listeners.emit { StentEvent.LeaseLost(runId, workflowName, env.workerId, fencingToken) }

    private fun finished(status: RunStatus, failure: String?) = env.listeners.emit {
        val decoded = decodeFailure(failure)
        StentEvent.RunFinished(
            runId, workflowName, status, decoded, decoded?.let { if (status == RunStatus.FAILED) FailureKind.ofType(it.type) else null },
            claimed.startedAtMs?.let { env.clock.nowMs() - it }, fencingToken,
        )
    }

    private fun deadlineFailure(atMs: Long) = Failure(
        DEADLINE_TYPE,
        "run '$runId' of workflow '$workflowName' passed its deadline ${java.time.Instant.ofEpochMilli(atMs)} and was cancelled",
    )

    private suspend fun finish(status: RunStatus, output: String?, failure: String?, next: ContinueAs? = null) {
        // a run that started children cancels those left running, even when it ends without running its body (cancel, deadline, poison)
        val parentOfChildren = startedChildren || claimed.records.any { it.kind == RecordKind.CHILD }
        // a run that continues as new hands its parent to the next run, which tells it the chain's outcome
        val write = FinishWrite(
            runId, fencingToken, status, output, failure, notifyParent = claimed.parentId != null && next == null, cancelChildren = parentOfChildren,
            continueAs = next,
            // the checkpoints taken for later go with the finish, in its transaction
            records = writing.withLock { generateSequence { unwritten.poll() }.toList() },
        )
        val result = try {
            blockingOnRunThread("finishing run '$runId'") { env.access.finish(write) }
        } catch (e: StentException) {
            // the steps it carried are written on their own before the run is given back (fenced: refused if the finish did land)
            if (write.records.isNotEmpty()) {
                unwritten.addAll(write.records)
                keepUnwritten()
            }
            throw e
        }
        if (result == WriteOutcome.OK) {
            env.notifier.runFinished(runId)
            if (next == null) claimed.parentId?.let(env.notifier::signalSent) // a parent in this process looks for its child's outcome
            if (next != null) {
                val nextId = next.createdId ?: next.runId
                env.listeners.emit { StentEvent.RunStarted(nextId, workflowName, claimed.queue ?: "default", true, claimed.traceContext) }
                env.notifier.workAvailable.fire()
            }
            finished(status, failure)
        } else {
            env.log.warn("run {}: lease lost before it could finish as {}", runId, status)
            leaseLost()
        }
    }

    /**
     * Writes [record] with this run's fencing token; stops the run when the lease is gone or the
     * database fails. Nothing is written once the run is stopping (a body that swallowed the
     * cancellation cannot record its result).
     */
    suspend fun checkpoint(record: StoredRecord) {
        currentCoroutineContext().ensureActive()
        val result = storeCall("checkpointing '${record.stepId}' of run '$runId'") { env.access.checkpoint(runId, fencingToken, record) }
        if (result == WriteOutcome.LEASE_LOST) throw lost()
        replay.record(record)
    }

    /**
     * Checkpoints [record] (a completed step) a moment later: before the run's next store call or
     * step body, or when its thread goes idle ([RunDispatcher]), whichever comes first; and when the
     * body returns first, with the finish, in its transaction. A one-step workflow then ends with
     * one write, not two. No side effect of the run can happen in between (the next step body waits
     * for the write), so a crash repeats the step only as it would have if it came during the write.
     */
    suspend fun checkpointLater(record: StoredRecord) {
        val context = currentCoroutineContext()
        context.ensureActive()
        unwritten.add(record)
        replay.record(record)
        // without a dispatcher that says when the run's thread goes idle, nothing would write it in time: now
        if (ownDispatcher(context) == null) writeUnwritten()
    }

    /**
     * Called by [RunDispatcher] on the run's thread when it has nothing more to run (the body waits for something
     * that is not a store call: another branch, a plain `delay`): writes the checkpoints taken for later. A run
     * that is stopping leaves them to [apply]. Never throws: a failure stops the run, as a failed checkpoint does.
     */
    fun writeUnwrittenWhenIdle() {
        if (unwritten.isEmpty() || isStopping) return
        try {
            if (tracked { env.access.inline("checkpointing run '$runId'") { drainUnwritten() } } == WriteOutcome.LEASE_LOST) stop(StopReason.LeaseLost)
        } catch (e: StentStoreException) {
            env.log.warn("run {}: checkpointing failed: {}", runId, e.message)
            stop(StopReason.StoreFailure)
        } catch (e: LeaseLostException) {
            stop(StopReason.LeaseLost)
        }
    }

    /**
     * True when code in [context] runs on this run's own thread ([RunDispatcher]) with nothing else of the run queued
     * there, no other branch busy and none waiting durably (a timer or signal that would resume it): a step body may
     * then start on that thread without holding up another branch.
     */
    fun aloneOnRunThread(context: kotlin.coroutines.CoroutineContext): Boolean {
        // a completed step of another branch not written yet: the body goes off this thread, which then writes it
        if (unwritten.isNotEmpty()) return false
        val dispatcher = ownDispatcher(context) ?: return false
        return dispatcher.runsOnlyTheCaller() && state.aloneBusy()
    }

    /** This run's [RunDispatcher] when code in [context] runs on it, else null. */
    private fun ownDispatcher(context: kotlin.coroutines.CoroutineContext): RunDispatcher? =
        (context[kotlin.coroutines.ContinuationInterceptor] as? RunDispatcher)?.takeIf { it.execution === this }

    /** Completed steps not written yet ([checkpointLater]), oldest first. */
    private val unwritten = ConcurrentLinkedQueue<StoredRecord>()

    /** Writes the checkpoints taken for later, if any; stops the run when the lease is gone or the database fails. */
    suspend fun writeUnwritten() {
        // empty and not being written: every checkpoint taken for later is durable
        if (unwritten.isEmpty() && !writing.isLocked) return
        if (storeCallNow("checkpointing run '$runId'") { drainUnwritten() } == WriteOutcome.LEASE_LOST) throw lost()
    }

    /** Writes the checkpoints taken for later before the run is given back; OK when the database failed (those steps run again). */
    private suspend fun keepUnwritten(): WriteOutcome = try {
        blockingOnRunThread("checkpointing run '$runId'") { drainUnwritten() }
    } catch (e: StentException) {
        WriteOutcome.OK
    }

    /** Held while checkpoints taken for later are written or taken by the finish: a caller that finds the queue empty knows they are durable. */
    private val writing = java.util.concurrent.locks.ReentrantLock()

    /**
     * Writes the checkpoints taken for later, one by one (each with concurrent checkpoints of other runs), each
     * removed only once written. Blocking.
     */
    private fun drainUnwritten(): WriteOutcome = writing.withLock {
        var outcome = WriteOutcome.OK
        while (outcome == WriteOutcome.OK) {
            val record = unwritten.peek() ?: break
            outcome = env.access.checkpoint(runId, fencingToken, record)
            // written, or never writable with this token: either way it leaves the queue
            if (outcome == WriteOutcome.OK) unwritten.remove() else unwritten.clear()
        }
        outcome
    }

    /** Checkpoints [record] while caching its result under [key] for [ttlMs]; returns the record written (the first value cached wins). */
    suspend fun checkpointCached(record: StoredRecord, key: String, ttlMs: Long): StoredRecord {
        currentCoroutineContext().ensureActive()
        val written = storeCall("caching '${record.stepId}' of run '$runId' under '$key'") {
            checkpointCached(runId, fencingToken, record, key, ttlMs)
        } ?: throw lost()
        replay.record(written)
        return written
    }

    /**
     * Runs a store call for this run, after the checkpoints taken for later; a database failure stops the run
     * (it is released with a back-off, or its lease expires).
     */
    suspend fun <T> storeCall(what: String, block: dev.stent.store.WorkflowStore.() -> T): T {
        writeUnwritten()
        return storeCallNow(what, block)
    }

    private suspend fun <T> storeCallNow(what: String, block: dev.stent.store.WorkflowStore.() -> T): T = try {
        blockingOnRunThread(what, block)
    } catch (e: StentStoreException) {
        env.log.warn("run {}: {} failed: {}", runId, what, e.message)
        stop(StopReason.StoreFailure)
        throw e
    } catch (e: LeaseLostException) {
        throw lost()
    }

    /**
     * True when one of this run's store calls has been in flight since before [sinceNanos]
     * (System.nanoTime): the heartbeat stops renewing such a run, so another worker can take it over.
     */
    fun storeCallStartedBefore(sinceNanos: Long): Boolean = storeCalls.values.any { it - sinceNanos < 0 }

    // the run's own thread is an IO thread: block on it rather than hop to the store dispatcher and back
    private suspend fun <T> blockingOnRunThread(what: String, block: dev.stent.store.WorkflowStore.() -> T): T {
        val onRunThread = currentCoroutineContext()[RunThread] != null
        return tracked { if (onRunThread) env.access.inline(what, block) else env.access.call(what, block) }
    }

    /** Runs [call], a store call of this run, tracked in [storeCalls] while it is in flight (the heartbeat spots one that hangs). */
    private inline fun <T> tracked(call: () -> T): T {
        val n = callNumbers.incrementAndGet()
        storeCalls[n] = env.clock.nanoTime()
        try {
            return call()
        } finally {
            storeCalls.remove(n)
        }
    }

    private fun lost(): RunStopped {
        stop(StopReason.LeaseLost)
        return RunStopped(StopReason.LeaseLost)
    }

    companion object {
        /** A run parked for at least this long is written to the store, so reads show it WAITING. */
        const val PARK_SHOWN_MS = 1_000L

        /** The failure type recorded on a run cancelled by its deadline. */
        const val DEADLINE_TYPE = "dev.stent.DeadlineExceeded"

        /** How long a run stopped by a database failure waits before it is claimed again: 1 s, doubling per claim, at most 60 s. */
        fun failureBackOffMs(claimCount: Int): Long = (1_000L shl (claimCount - 1).coerceIn(0, 6)).coerceAtMost(60_000L)
    }
}

/**
 * A run's serial dispatcher: [inner] (a view of one thread at a time), which tells [execution] when the run's
 * thread goes idle, that is when every task dispatched to it has run. Then no code of the run runs until
 * something outside it (a step body, a timer, another branch) resumes it: the moment to write the checkpoints
 * it took for later ([RunExecution.writeUnwrittenWhenIdle]).
 */
internal class RunDispatcher(private val inner: kotlinx.coroutines.CoroutineDispatcher) : kotlinx.coroutines.CoroutineDispatcher() {
    /** Set once, before the run's coroutine starts. */
    @Volatile
    var execution: RunExecution? = null

    private val queued = java.util.concurrent.atomic.AtomicInteger()

    override fun isDispatchNeeded(context: kotlin.coroutines.CoroutineContext): Boolean = inner.isDispatchNeeded(context)

    /** True when the task running now is the only one dispatched here and not yet done (for code running on this dispatcher). */
    fun runsOnlyTheCaller(): Boolean = queued.get() <= 1

    override fun dispatch(context: kotlin.coroutines.CoroutineContext, block: Runnable) {
        queued.incrementAndGet()
        inner.dispatch(
            context,
            Runnable {
                try {
                    block.run()
                } finally {
                    // the view runs one task at a time: nothing of the run runs while this writes
                    if (queued.decrementAndGet() == 0) execution?.writeUnwrittenWhenIdle()
                }
            },
        )
    }

    override fun toString(): String = "RunDispatcher($inner)"
}
