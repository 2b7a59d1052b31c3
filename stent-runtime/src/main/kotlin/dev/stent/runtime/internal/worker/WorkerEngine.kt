@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent.runtime.internal.worker

import dev.stent.Stent
import dev.stent.StentEvent
import dev.stent.StentStoreException
import dev.stent.WorkerConfig
import dev.stent.runtime.internal.BlockingDispatchers
import dev.stent.runtime.internal.Listeners
import dev.stent.runtime.internal.MDC_RUN_ID
import dev.stent.runtime.internal.MDC_WORKFLOW
import dev.stent.runtime.internal.WakeUp
import dev.stent.runtime.internal.engine.EngineClock
import dev.stent.runtime.internal.engine.Outcome
import dev.stent.runtime.internal.engine.RunDispatcher
import dev.stent.runtime.internal.engine.RunEnvironment
import dev.stent.runtime.internal.engine.RunExecution
import dev.stent.runtime.internal.engine.RunSlots
import dev.stent.runtime.internal.engine.RunThread
import dev.stent.runtime.internal.engine.StopReason
import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimedRun
import dev.stent.store.HeartbeatResult
import dev.stent.store.WorkerRecord
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineExceptionHandler
import kotlinx.coroutines.CoroutineName
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.job
import kotlinx.coroutines.joinAll
import kotlinx.coroutines.launch
import kotlinx.coroutines.selects.onTimeout
import kotlinx.coroutines.selects.select
import kotlinx.coroutines.slf4j.MDCContext
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.withContext
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
 *
 * Stop is bounded: a stopped run whose step body ignores interruption is abandoned after
 * [WorkerConfig.stopTimeout] (see [watchStopped]), and [shutdown] returns within its grace plus
 * the stop timeout plus [FINAL_WAIT] twice, whatever user code or the database does.
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

    /**
     * Store calls nobody waits for beyond a bound (heartbeats, the last writes of a shutdown): they run
     * here, apart from [scope], so a call that hangs in JDBC never holds up the worker or its shutdown.
     */
    private val detached = CoroutineScope(SupervisorJob() + Dispatchers.IO + CoroutineName("stent-worker-$id-detached"))

    /** Runs this worker has loaded; written by the claim loop, removed by each run when it ends (or is abandoned). */
    private val active = ConcurrentHashMap<String, RunExecution>()

    /** Runs waiting in memory without a slot, longest waiting first; guarded by itself. */
    private val parked = LinkedHashSet<RunExecution>()

    /**
     * A run holds a slot while it executes code, not while every branch waits ([RunSlots]); fair, so a
     * run that resumes gets the next free slot before the claim loop takes new work.
     */
    private val slots = object : RunSlots {
        val permits = Semaphore(config.concurrency)

        override suspend fun acquire() = permits.acquire()

        override fun release() {
            permits.release()
            slotFreed.fire()
        }

        override fun parked(run: RunExecution) {
            val evicted = synchronized(parked) {
                parked += run
                if (parked.size > config.maxWaitingInMemory) parked.first().also { parked -= it } else null
            }
            // past the bound, the run waiting longest unloads (if a branch moved on meanwhile, it simply goes on)
            evicted?.evict()
        }

        override fun unparked(run: RunExecution) {
            synchronized(parked) { parked -= run }
        }
    }
    private val slotFreed = WakeUp()
    private val stopping = AtomicBoolean(false)

    /** Orders runs launched for a start of this process ([launchStarted]) with the start of a shutdown. */
    private val startLock = Any()

    /**
     * True when the last claim took fewer runs than it had slots for: no ready run of this worker's was left in the
     * database, so a run started in this process may take a free slot without overtaking older ones.
     */
    @Volatile
    private var drained = false

    /** Starts [reserveStart] found no slot for: one during a claim means a PENDING run the claim may not have seen. */
    private val refusedStarts = java.util.concurrent.atomic.AtomicLong()
    private val stopped = CompletableDeferred<Unit>()
    private var claimJob: Job? = null
    private var heartbeatJob: Job? = null

    /** When the last heartbeat that renewed this worker's leases started (System.nanoTime); written by the heartbeat loop. */
    @Volatile
    var lastRenewalNanos: Long = System.nanoTime()
        private set

    /** Database clock minus local clock, measured at each claim and heartbeat. */
    @Volatile
    private var clockOffsetMs = 0L

    val activeCount: Int get() = active.size

    /** The database clock, estimated from the local clock and the last measured offset. */
    fun nowMs(): Long = stent.virtualClock?.asLong ?: (System.currentTimeMillis() + clockOffsetMs)

    /** What every run of this worker executes in. */
    private val env = RunEnvironment(
        config = config,
        access = access,
        notifier = notifier,
        maxPayloadBytes = stent.options.maxPayloadBytes,
        clock = object : EngineClock {
            override fun nowMs(): Long = this@WorkerEngine.nowMs()
            override fun nanoTime(): Long = System.nanoTime()
        },
        // one serial view of the IO pool per run: a run's coroutines never run on two threads at once,
        // and its checkpoints block its own thread instead of hopping to the store dispatcher
        runDispatcher = { Dispatchers.IO.limitedParallelism(1) },
        timerDispatcher = Dispatchers.Default,
        stepDispatcher = BlockingDispatchers.steps(config.maxParallelSteps),
        stepPermits = Semaphore(config.maxParallelSteps),
        slots = slots,
        log = log,
        listeners = Listeners(stent.listeners).also { l -> config.listeners.forEach { l.add(it) } },
        lastRenewalNanos = { lastRenewalNanos },
        onStopped = ::watchStopped,
    )

    private fun observeDbClock(dbNowMs: Long, before: Long, after: Long) {
        clockOffsetMs = dbNowMs - (before + after) / 2
    }

    fun start() {
        log.info(
            "stent worker {} serves workflows {} from {}, {} at a time",
            id, config.definitions.keys, config.queues?.let { "queues $it" } ?: "every queue", config.concurrency,
        )
        val maintenance = Maintenance(id, config, access, env.listeners, log, notifier.clockMoved.takeIf { stent.virtualClock != null })
        claimJob = scope.launch(CoroutineName("stent-claim-$id")) {
            maintenance.declareLimits { stopping.get() } // before the first claim
            claimLoop()
        }
        heartbeatJob = scope.launch(CoroutineName("stent-heartbeat-$id")) { heartbeatLoop() }
        scope.launch(CoroutineName("stent-maintenance-$id")) { maintenance.loop() }
        stent.localWorkers += this
    }

    private suspend fun claimLoop() {
        val names = config.definitions.keys.toList()
        val queues = config.queues?.toList()
        // with wake-ups from other processes, an idle worker need not poll fast: new work announces itself
        val minPoll = if (access.store.deliversWakeUps) config.pollInterval else MIN_POLL
        var idle = minPoll
        while (!stopping.get()) {
            val armedWork = notifier.workAvailable.arm()
            val armedSlot = slotFreed.arm()
            // slots are reserved before the claim and handed to the runs it takes, so a run that resumes
            // meanwhile cannot find them gone; the claim takes no more runs than it has slots for
            var free = 0
            while (free < config.concurrency && slots.permits.tryAcquire()) free++
            var claimed = 0
            var launched = 0
            var nextReadyAt: Long? = null
            if (free > 0) {
                try {
                    // A claim that committed is launched or released, never dropped: not even a shutdown cancels it halfway.
                    withContext(NonCancellable) {
                        val before = System.currentTimeMillis()
                        // the leases start at the claim statement: count them from before it, never later
                        val claimedAtNanos = System.nanoTime()
                        val refusedBefore = refusedStarts.get()
                        val result = access.call("claiming runs") {
                            claim(ClaimRequest(id, names, queues ?: emptyList(), free, config.leaseDuration.inWholeMilliseconds))
                        }
                        observeDbClock(result.dbNowMs, before, System.currentTimeMillis())
                        claimed = result.runs.size
                        drained = claimed < free
                        // a start refused during the claim (or while this was written) made a PENDING run the claim may not have seen
                        if (refusedStarts.get() != refusedBefore) drained = false
                        env.listeners.emit { StentEvent.ClaimBatch(id, free, claimed, System.nanoTime() - claimedAtNanos) }
                        if (stopping.get()) {
                            releaseUnstarted(result.runs)
                        } else {
                            result.runs.forEach {
                                launchRun(it, claimedAtNanos)
                                launched++
                            }
                        }
                        nextReadyAt = result.nextReadyAt
                    }
                } catch (e: StentStoreException) {
                    log.warn("stent worker {}: claim failed, retrying: {}", id, e.message)
                } finally {
                    // the reserved slots no launched run took (quietly: waking the claim loop for them would make it spin)
                    repeat(free - launched) { slots.permits.release() }
                }
            }
            if (claimed > 0) idle = minPoll
            // Sleep until woken, until the next known timer is due, or for the back-off: the safety net
            // for work written by other processes without a wake-up channel.
            val untilTimer = nextReadyAt?.let { (it - nowMs()).coerceAtLeast(1).milliseconds }
            val pause = if (untilTimer != null && untilTimer < idle) untilTimer else idle
            // a freed slot (a run ended or parked) is worth a claim only when the last claim may have left work behind:
            // it took all it asked for, or it could ask for nothing
            val backlogMayRemain = free == 0 || claimed == free
            val woken = select {
                if (free > 0) armedWork.onAwait { true }
                if (backlogMayRemain) armedSlot.onAwait { true }
                onTimeout(pause) { false }
            }
            idle = if (woken) minPoll else (idle * 2).coerceAtMost(config.pollInterval)
            if (woken) gatherSlots()
        }
    }

    /**
     * A slot for a run of [workflowName] in [queue] that a client of this process is starting, so the run is created
     * claimed by this worker and starts without a claim round trip ([launchStarted]); null when this worker does
     * not serve it, has no free slot, is stopping, or may have older ready runs waiting in the database.
     */
    fun reserveStart(workflowName: String, queue: String): ClaimedStartSlot? {
        if (!drained || stopping.get() || workflowName !in config.definitions || config.queues?.contains(queue) == false) return null
        if (!slots.permits.tryAcquire()) {
            // a run starts PENDING now: the next claim takes it before any start overtakes it
            refusedStarts.incrementAndGet()
            drained = false
            return null
        }
        return ClaimedStartSlot(this, config.leaseDuration.inWholeMilliseconds)
    }

    /** Launches a run created claimed by this worker into a slot [reserveStart] gave; false when the worker is stopping (the caller releases the run). */
    fun launchStarted(run: ClaimedRun, claimedAtNanos: Long): Boolean = synchronized(startLock) {
        if (stopping.get()) return false
        launchRun(run, claimedAtNanos)
        true
    }

    /** Gives back a slot [reserveStart] gave for a start that created no claimed run. */
    fun cancelStart() = slots.release()

    /** Gives back runs claimed while the worker began to shut down: they never started, so the release is clean. */
    private suspend fun releaseUnstarted(runs: List<ClaimedRun>) {
        for (run in runs) {
            try {
                access.call("releasing run '${run.id}' claimed during shutdown") { release(run.id, run.fencingToken) }
            } catch (e: StentStoreException) {
                log.warn("run {}: claimed during shutdown and not released ({}); its lease will expire", run.id, e.message)
            }
        }
        if (runs.isNotEmpty()) notifier.workAvailable.fire()
    }

    /**
     * When runs finish one by one, waits a moment for a few more slots, so a busy worker claims in
     * batches instead of one claim transaction per finished run.
     */
    private suspend fun gatherSlots() {
        val batch = (config.concurrency / 8).coerceAtLeast(1)
        withTimeoutOrNull(GATHER) {
            while (slots.permits.availablePermits in 1 until batch) slotFreed.arm().await()
        }
    }

    private fun launchRun(claimed: ClaimedRun, claimedAtNanos: Long) {
        // This worker claimed a run it still executes: the older execution lost its lease (its heartbeat
        // stalled past it). Stop that one first, and let it unwind before the new one starts (for at most
        // the stop timeout, after which it is abandoned); its cleanup removes only itself.
        val previous = active[claimed.id]?.also { it.stop(StopReason.LeaseLost) }
        val execution = RunExecution(env, claimed, claimedAtNanos)
        val dispatcher = RunDispatcher(env.runDispatcher()).also { it.execution = execution }
        val claimedEvent = env.listeners.report {
            StentEvent.RunClaimed(
                claimed.id, claimed.workflowName, claimed.queue, id, claimed.claimCount, claimed.fencingToken > 1, claimed.records.size,
                claimed.traceContext, claimed.parentId, claimed.fencingToken,
            )
        }
        execution.grantSlot() // reserved by the claim loop
        val began = AtomicBoolean(false)
        // every log line about the run, the engine's and its step bodies', carries its id and workflow (SLF4J MDC)
        val mdc = MDCContext(mapOf(MDC_RUN_ID to claimed.id, MDC_WORKFLOW to claimed.workflowName))
        val job = scope.launch(
            // with a tracing hook, the run's code runs in what it gives (the execution's span current)
            dispatcher + RunThread.element + mdc + env.listeners.runContext(claimedEvent) + CoroutineName("stent-run-${claimed.id}"),
            start = CoroutineStart.LAZY,
        ) {
            began.set(true)
            try {
                // not cancellable: a stop meanwhile must still reach execute(), which applies it (nothing is orphaned)
                previous?.job?.let { old -> withContext(NonCancellable) { withTimeoutOrNull(config.stopTimeout) { old.join() } } }
                execution.execute()
            } finally {
                if (active.remove(claimed.id, execution)) slotFreed.fire()
            }
        }
        // the job is set before the run is visible in `active`, so every stop reaches it
        execution.job = job
        active[claimed.id] = execution
        // a run stopped before its coroutine ever ran (a heartbeat or a shutdown right after the claim) still gets its outcome
        job.invokeOnCompletion {
            if (!began.get()) {
                if (active.remove(claimed.id, execution)) slotFreed.fire()
                execution.releaseSlot()
                if (execution.settle()) applyDetached(execution, execution.stopReasonNow ?: StopReason.Shutdown)
            }
        }
        job.start()
    }

    /**
     * Called when [execution] is stopped for [reason] while a step body may be running: its thread
     * was interrupted; if the run has not unwound after the stop timeout, it is abandoned.
     */
    fun watchStopped(execution: RunExecution) {
        scope.launch(CoroutineName("stent-stop-watch-${execution.runId}")) {
            delay(config.stopTimeout)
            abandon(execution)
        }
    }

    /**
     * Gives up on a stopped run whose body ignores interruption: its slot is freed, nothing it
     * returns is recorded, and its outcome is applied from here: a cancelled run goes CANCELLED (a
     * later write of the body is refused by the fence), any other run keeps its lease until it expires.
     */
    private fun abandon(execution: RunExecution) {
        val job = execution.job ?: return
        if (job.isCompleted || !execution.settle()) return
        val reason = execution.stopReasonNow ?: StopReason.Shutdown
        val threads = execution.state.runningSteps().flatMap { step -> step.threadsNow().map { step.stepId to it } }
        log.warn(
            "run {}: stopped ({}) {} ago, but its body has not returned although its thread was interrupted; abandoning it: " +
                "nothing it returns will be recorded{}",
            execution.runId, reason, config.stopTimeout,
            threads.joinToString("") { (step, t) -> "\n  step '$step' on thread '${t.name}':\n    " + t.stackTrace.take(12).joinToString("\n    ") },
        )
        if (active.remove(execution.runId, execution)) slotFreed.fire()
        execution.releaseSlot()
        slots.unparked(execution)
        execution.state.runningSteps().forEach { it.permits.release() }
        execution.forgetCancelHandler()
        when (reason) {
            // its body may still be going: a failed write leaves the run to its lease, never released to another claim now
            StopReason.Cancel, is StopReason.Deadline -> applyDetached(execution, reason, mayRelease = false)
            StopReason.LeaseLost -> execution.leaseLost()
            else -> {
                log.warn("run {}: its lease is left to expire; then another worker resumes it", execution.runId)
                execution.released("abandoned: its body ignores interruption; its lease expires")
            }
        }
    }

    /**
     * Applies a stopped run's outcome from outside its own coroutine: in [detached], so a write that hangs
     * never holds up the caller (a shutdown has a bound to keep), and started atomically, so cancelling
     * [detached] at shutdown cannot drop it.
     */
    private fun applyDetached(execution: RunExecution, reason: StopReason, mayRelease: Boolean = true) {
        detached.launch(start = CoroutineStart.ATOMIC) { withContext(NonCancellable) { execution.apply(Outcome.Stopped(reason), mayRelease) } }
    }

    /** A heartbeat in flight: when it started, the runs it renews, and its reply. */
    private class Renewal(val startedNanos: Long, val runs: List<RunExecution>, val reply: Deferred<HeartbeatResult>)

    private suspend fun heartbeatLoop() {
        val leaseNanos = config.leaseDuration.inWholeNanoseconds
        var registration: Deferred<Unit>? = null
        var inFlight: Renewal? = null

        // a reply counts from when its call started, however late it arrives
        // and whatever it failed with, the loop goes on: it also runs the lease watchdog
        fun take(renewal: Renewal) {
            try {
                @OptIn(kotlinx.coroutines.ExperimentalCoroutinesApi::class)
                val result = renewal.reply.getCompleted()
                lastRenewalNanos = maxOf(lastRenewalNanos, renewal.startedNanos)
                applyHeartbeat(renewal.runs, result)
            } catch (e: VirtualMachineError) {
                throw e
            } catch (e: Throwable) {
                log.warn("stent worker {}: heartbeat failed: {}", id, e.message ?: e.javaClass.name)
            }
        }
        while (true) {
            // announced once, for describe() of runs nobody serves; apart from renewals, so it never holds them up
            if (registration == null || (registration.isCompleted && registration.getCompletionExceptionOrNull() != null)) {
                registration = detached.async { access.inline("registering worker '$id'") { registerWorker(workerRecord()) } }
            }
            val now = System.nanoTime()
            inFlight?.let { renewal ->
                when {
                    renewal.reply.isCompleted -> take(renewal).also { inFlight = null }
                    // a call that hangs for a lease is given up (it goes on in the background): start a fresh one
                    now - renewal.startedNanos > leaseNanos -> { renewal.reply.cancel(); inFlight = null }
                }
            }
            val snapshot = active.values.toList()
            // no renewal for a whole lease (monotonic time), and none since the run was claimed: others may own it now
            snapshot.filter { it.leaseMayBeGone(now) }.forEach { it.stop(StopReason.LeaseLost) }
            // a run stuck in one store call for a whole lease is not renewed: another worker takes it over
            // (runs already stopped as lease-lost are not renewed: they write nothing more)
            val (stuck, renewable) = snapshot.filter { it.stopReasonNow !== StopReason.LeaseLost }
                .partition { it.storeCallStartedBefore(now - leaseNanos) }
            for (run in stuck) {
                log.warn("run {}: a database call has been stuck for more than a lease; its lease is no longer renewed", run.runId)
                run.stop(StopReason.LeaseLost)
            }
            if (inFlight == null) {
                val renewal = Renewal(
                    now, renewable,
                    detached.async {
                        val before = System.currentTimeMillis()
                        access.inline("renewing leases") { heartbeat(id, renewable.map { it.runId }, config.leaseDuration.inWholeMilliseconds) }
                            .also { observeDbClock(it.dbNowMs, before, System.currentTimeMillis()) }
                    },
                )
                // a heartbeat that hangs never blocks this loop: the lease watchdog above must keep running
                if (withTimeoutOrNull(config.heartbeatInterval) { renewal.reply.join() } != null) take(renewal)
                else inFlight = renewal.also { log.warn("stent worker {}: heartbeat slower than {}; still waiting for it", id, config.heartbeatInterval) }
            }
            delay(config.heartbeatInterval)
        }
    }

    private fun applyHeartbeat(renewed: List<RunExecution>, result: HeartbeatResult) {
        val held = result.leases.associateBy { it.runId }
        for (execution in renewed) {
            val lease = held[execution.runId]
            when {
                lease == null || lease.fencingToken != execution.fencingToken -> execution.stop(StopReason.LeaseLost)
                lease.cancelRequested -> execution.stop(StopReason.Cancel)
            }
        }
    }

    private fun workerRecord() =
        WorkerRecord(id, config.definitions.keys.toList(), config.queues?.toList(), config.leaseDuration.inWholeMilliseconds, 0, 0, null)

    /**
     * Stops claiming, waits up to [grace] for in-flight runs to finish or reach a durable wait,
     * then stops the rest (interrupting their step bodies) and releases their leases. Returns
     * within `grace + stopTimeout + 2 × FINAL_WAIT`, whatever runs or the database do: a run still
     * busy then is abandoned with its lease left to expire. A second call waits for the first.
     */
    suspend fun shutdown(grace: Duration) {
        val bound = grace + config.stopTimeout + FINAL_WAIT * 2
        stent.localWorkers.remove(this)
        // under the lock: a run launched for a start is in `active` before this, or is refused after it
        if (!synchronized(startLock) { stopping.compareAndSet(false, true) }) {
            withTimeoutOrNull(bound) { stopped.await() }
            return
        }
        // not cancellable: a caller that gives up waiting must not leave the worker half stopped (every wait below is bounded)
        withContext(NonCancellable) { stopAll(grace) }
    }

    private suspend fun stopAll(grace: Duration) {
        try {
            // a claim in flight finishes on its own and releases what it took (see claimLoop)
            claimJob?.cancel()
            withTimeoutOrNull(grace) {
                claimJob?.join() // after it, no run is launched any more
                while (active.isNotEmpty()) {
                    val armed = slotFreed.arm()
                    if (active.isEmpty()) break
                    select { armed.onAwait {}; onTimeout(100.milliseconds) {} }
                }
            }
            val remaining = active.values.toList()
            remaining.forEach { it.stop(StopReason.Shutdown) }
            withTimeoutOrNull(config.stopTimeout) { remaining.mapNotNull { it.job }.joinAll() }
            remaining.forEach { abandon(it) }
            heartbeatJob?.cancel()
            val deregister = detached.async { access.inline("deregistering worker '$id'") { deregisterWorker(id) } }
            withTimeoutOrNull(FINAL_WAIT) { deregister.join() }
            scope.cancel()
            withTimeoutOrNull(FINAL_WAIT) { scope.coroutineContext.job.join() }
            detached.cancel()
        } finally {
            stopped.complete(Unit)
        }
    }

    private companion object {
        val MIN_POLL = 10.milliseconds
        val GATHER = 2.milliseconds

        /** How long shutdown waits for each of its last steps (deregistering, the worker's own coroutines). */
        val FINAL_WAIT = 1.seconds
    }
}

/** A slot of [worker] reserved for a run being started in this process, and the lease the run is created with. */
internal class ClaimedStartSlot(val worker: WorkerEngine, val leaseMs: Long)
