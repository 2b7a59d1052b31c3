@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent.runtime.internal.engine

import dev.stent.ChildFailedException
import dev.stent.ChildRun
import dev.stent.Codec
import dev.stent.Codecs
import dev.stent.Failure
import dev.stent.InternalStentApi
import dev.stent.InvalidArgumentException
import dev.stent.NonDeterminismException
import dev.stent.PayloadException
import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RetryPolicy
import dev.stent.RunStatus
import dev.stent.SignalTimeoutException
import dev.stent.StentEvent
import dev.stent.StepCache
import dev.stent.StepFailedException
import dev.stent.StepScope
import dev.stent.StepTimeoutException
import dev.stent.TimeMath
import dev.stent.WorkflowDefinition
import dev.stent.WorkflowScope
import dev.stent.runtime.internal.MDC_ATTEMPT
import dev.stent.runtime.internal.MDC_RUN_ID
import dev.stent.runtime.internal.MDC_STEP_ID
import dev.stent.runtime.internal.MDC_WORKFLOW
import dev.stent.runtime.internal.PayloadSite
import dev.stent.runtime.internal.decodeFailure
import dev.stent.runtime.internal.decodePayload
import dev.stent.runtime.internal.encodeFailure
import dev.stent.runtime.internal.encodePayload
import dev.stent.store.ChildOutcome
import dev.stent.store.EventRecords
import dev.stent.store.NewRun
import dev.stent.store.SignalNames
import dev.stent.store.StoredRecord
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.DisposableHandle
import kotlinx.coroutines.InternalCoroutinesApi
import kotlinx.coroutines.Job
import kotlinx.coroutines.ThreadContextElement
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitCancellation
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.isActive
import kotlinx.coroutines.job
import kotlinx.coroutines.launch
import kotlinx.coroutines.slf4j.MDCContext
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.withContext
import kotlinx.coroutines.yield
import kotlinx.serialization.builtins.serializer
import java.time.Instant
import java.util.UUID
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.coroutines.AbstractCoroutineContextElement
import kotlin.coroutines.CoroutineContext
import kotlin.random.Random
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * In the context of a running step body: names the step (Stent calls inside a body are misuse),
 * and interrupts the threads the body blocks when the body is cancelled (the run stops, or the
 * step's timeout passes), so blocking code stops too.
 *
 * It tracks the threads the body's coroutines execute on (as a [ThreadContextElement], entered
 * and left at every resumption and suspension), and clears an interrupt it caused before the
 * thread leaves the body, so no pool thread keeps a stray interrupt.
 */
internal class InStep(val stepId: String, val permits: StepPermits) : AbstractCoroutineContextElement(Key), ThreadContextElement<Unit> {
    companion object Key : CoroutineContext.Key<InStep>

    private val lock = Any()

    // guarded by lock: threads executing the body now (with how many of its coroutines each), and those this interrupted
    private val threads = HashMap<Thread, Int>(2)
    private val interrupted = HashSet<Thread>(2)

    /** True once the body was cancelled. */
    @Volatile
    var cancelled: Boolean = false
        private set

    override fun updateThreadContext(context: CoroutineContext) {
        val t = Thread.currentThread()
        synchronized(lock) { threads[t] = (threads[t] ?: 0) + 1 }
    }

    override fun restoreThreadContext(context: CoroutineContext, oldState: Unit) {
        val t = Thread.currentThread()
        synchronized(lock) {
            val n = (threads[t] ?: 1) - 1
            if (n > 0) {
                threads[t] = n
                return
            }
            threads.remove(t)
            if (interrupted.remove(t)) Thread.interrupted()
        }
    }

    /**
     * Interrupts every thread the body blocks right now (once, as `runInterruptible` does: a body
     * that resumes after the cancel gets a `CancellationException` at its next suspension instead).
     */
    fun cancel() {
        synchronized(lock) {
            if (cancelled) return
            cancelled = true
            threads.keys.forEach(::interruptLocked)
        }
    }

    /** The threads the body runs on right now, for the log of an abandoned run. */
    fun threadsNow(): List<Thread> = synchronized(lock) { threads.keys.toList() }

    private fun interruptLocked(t: Thread) {
        t.interrupt()
        interrupted += t
    }
}

/**
 * The two step permits a running body holds, the run's and the worker's, given back once: when the
 * attempt ends, or when the worker abandons a run whose body ignores interruption (so a body that
 * never returns does not keep a worker permit forever).
 */
internal class StepPermits private constructor(private val run: Semaphore, private val worker: Semaphore) {
    private val released = AtomicBoolean()

    fun release() {
        if (released.compareAndSet(false, true)) {
            worker.release()
            run.release()
        }
    }

    companion object {
        /** Takes the run's permit, then the worker's (always in that order, so two takers never wait on each other in a cycle). */
        suspend fun acquire(run: Semaphore, worker: Semaphore): StepPermits {
            run.acquire()
            try {
                worker.acquire()
            } catch (e: Throwable) {
                run.release()
                throw e
            }
            return StepPermits(run, worker)
        }
    }
}

private class StepScopeImpl(override val runId: String, override val stepId: String, override val attempt: Int) : StepScope

/**
 * The [WorkflowScope] of one run execution: every call looks up its record first (loaded at
 * claim; never a database read) and only does the work, then checkpoints it, when there is none.
 */
@OptIn(InternalStentApi::class)
internal class WorkflowScopeImpl(
    private val run: RunExecution,
    private val definition: WorkflowDefinition<*, *>,
    /** The run's coroutine scope; quiescence checks run in it. */
    private val runScope: CoroutineScope,
) : WorkflowScope {
    override val runId: String get() = run.runId
    override val workflowName: String get() = definition.name
    private val state get() = run.state
    private val replay get() = run.replay
    private val env get() = run.env
    private val maxBytes get() = env.maxPayloadBytes

    // ---- steps ---------------------------------------------------------------------------

    override suspend fun <T> step(
        id: String,
        codec: Codec<T>,
        retry: RetryPolicy?,
        timeout: Duration?,
        cache: StepCache?,
        block: suspend StepScope.() -> T,
    ): T {
        checkUserId(id, "step")
        checkNotInStep("step", id)
        val timeoutMs = timeout?.takeUnless { it.isInfinite() }?.let { t ->
            if (!t.isPositive()) throw invalid("step '$id': timeout must be positive (or null for none), was $t", id)
            TimeMath.delayMs(t).coerceAtLeast(1)
        }
        val cached = cache?.let { c ->
            WorkflowDefinition.validateName("cache key", c.key, runId, workflowName)
            if (!c.ttl.isPositive()) throw invalid("step '$id': cache ttl must be positive, was ${c.ttl}", id)
            CacheUse(c.key, TimeMath.delayMs(c.ttl))
        }
        val record = visit(id, RecordKind.STEP)
        val site = PayloadSite("result of step '$id'", runId, workflowName, id)
        var attempts = 0
        when (record?.status) {
            RecordStatus.COMPLETED -> return decodePayload(codec, record.result ?: "null", site)
            RecordStatus.FAILED -> throw stepFailed(id, record.attempts, decodeFailure(record.failure))
            RecordStatus.RETRYING -> {
                beyondHistory("step", id, RecordKind.STEP)
                attempts = record.attempts
                record.wakeAt?.let { waitUntil(it, null) }
            }
            else -> beyondHistory("step", id, RecordKind.STEP)
        }
        if (cached != null && attempts == 0) {
            // stored by another run within its TTL: recorded as this step's result, the body never runs
            busy {
                val hit = run.storeCall("reading cache key '${cached.key}' for step '$id' of run '$runId'") { getCached(cached.key) }
                if (hit != null) {
                    run.checkpoint(StoredRecord(id, RecordKind.STEP, RecordStatus.COMPLETED, result = hit))
                    return@step decodePayload(codec, hit, site)
                }
            }
        }
        val policy = retry ?: definition.retryPolicy
        while (true) {
            currentCoroutineContext().ensureActive()
            val attempt = attempts + 1
            val wakeAt = busy {
                when (val outcome = runAttempt(id, attempt, timeoutMs, block)) {
                    is Attempt.Ok -> return@step completeStep(id, codec, outcome.value, attempt, site, cached).also {
                        env.listeners.emit { StentEvent.StepCompleted(runId, workflowName, id, attempt, outcome.nanos, run.fencingToken) }
                    }
                    is Attempt.Err -> failedAttempt(id, attempt, policy, outcome.error, outcome.nanos)
                }
            }
            attempts = attempt
            waitUntil(wakeAt, null)
        }
    }

    /**
     * Runs one attempt of a step body. When the run is stopping, whatever the body threw or
     * returned is dropped and the cancellation goes on; when the step's own timeout cancelled the
     * body, the attempt fails with [StepTimeoutException].
     */
    private suspend fun <T> runAttempt(id: String, attempt: Int, timeoutMs: Long?, block: suspend StepScope.() -> T): Attempt<T> {
        val permits = StepPermits.acquire(run.stepPermits, env.stepPermits)
        try {
            // a step completed a moment ago (in any branch) is written before this body has any effect
            run.writeUnwritten()
            return runAttemptNow(InStep(id, permits), attempt, timeoutMs, block)
        } finally {
            permits.release()
        }
    }

    private suspend fun <T> runAttemptNow(inStep: InStep, attempt: Int, timeoutMs: Long?, block: suspend StepScope.() -> T): Attempt<T> {
        val id = inStep.stepId
        run.checkLease()
        state.stepStarted(inStep)
        val started = env.listeners.report { StentEvent.StepStarted(runId, workflowName, id, attempt, run.fencingToken) }
        // with a tracing hook, the body runs in what it gives (its span current)
        val traced = env.listeners.stepContext(started)
        val began = System.nanoTime()
        // set by the step's own timer only, so what the body throws when it is cut off does not matter
        val timedOut = AtomicBoolean()
        try {
            val stub = if (env.config.stepStubs.isEmpty()) null else env.config.stepStubs[dev.stent.WorkerConfig.stubKey(workflowName, id)]

            @Suppress("UNCHECKED_CAST")
            val body: suspend () -> T = if (stub == null) {
                { StepScopeImpl(runId, id, attempt).block() }
            } else {
                { StepScopeImpl(runId, id, attempt).stub() as T }
            }
            val value = if (timeoutMs == null) {
                interruptible(inStep, attempt, traced, body)
            } else {
                coroutineScope {
                    val work = async { interruptible(inStep, attempt, traced, body) }
                    // on the timer dispatcher, apart from the body's threads
                    val timer = launch(env.timerDispatcher) {
                        delay(timeoutMs.milliseconds)
                        timedOut.set(true)
                        work.cancel()
                    }
                    try {
                        work.await()
                    } finally {
                        timer.cancel()
                    }
                }
            }
            return Attempt.Ok(value, System.nanoTime() - began)
        } catch (e: Throwable) {
            if (e is Error && e !is StackOverflowError && e !is AssertionError) throw e
            if (!currentCoroutineContext().isActive) {
                // the run is stopping: nothing the body did is recorded
                throw e as? CancellationException ?: CancellationException("step '$id' of run '$runId' stopped").apply { initCause(e) }
            }
            val nanos = System.nanoTime() - began
            if (timedOut.get()) return Attempt.Err(StepTimeoutException(runId, workflowName, id, attempt, timeoutMs!!.milliseconds), nanos)
            return Attempt.Err(e, nanos)
        } finally {
            state.stepEnded(inStep)
        }
    }

    /**
     * Runs [body] on the step dispatcher, off the run's serial thread (so the bodies of parallel
     * branches overlap, whether they block or suspend), with [inStep] in its context, so a
     * cancellation of the body (or of children it left running) interrupts the threads it blocks.
     * The handler stays until `withContext` has waited for those children too; the result comes
     * back to the run's thread, which checkpoints it.
     */
    @OptIn(InternalCoroutinesApi::class)
    private suspend fun <T> interruptible(inStep: InStep, attempt: Int, traced: CoroutineContext, body: suspend () -> T): T {
        var handle: DisposableHandle? = null
        // log lines of the body carry the run, the step and the attempt (SLF4J MDC)
        // on top of what the workflow's code put in its own MDCContext (usually nothing: the run's two keys only)
        val outer = currentCoroutineContext()[MDCContext]?.contextMap.orEmpty()
        val own = mapOf(MDC_RUN_ID to runId, MDC_WORKFLOW to workflowName, MDC_STEP_ID to inStep.stepId, MDC_ATTEMPT to attempt.toString())
        val mdc = MDCContext(if (own.keys.containsAll(outer.keys)) own else outer + own)
        val context = env.stepDispatcher + inStep + mdc + traced
        try {
            // Alone on the run's thread (called from the workflow's own coroutine, which has no other coroutine alive, no
            // branch busy or waiting, nothing else of the run queued there), the body starts there, undispatched: that
            // thread is made for blocking, and a body that does not suspend costs no thread hand-off. It goes on on the
            // step dispatcher after a suspension, and its own coroutines run there too. A timed attempt runs in a
            // coroutine of its own, so it never takes this path.
            if (aloneInWorkflow() && run.aloneOnRunThread(currentCoroutineContext())) {
                return try {
                    coroutineScope {
                        async(context, start = CoroutineStart.UNDISPATCHED) {
                            handle = coroutineContext.job.invokeOnCompletion(onCancelling = true) { if (it != null) inStep.cancel() }
                            // an undispatched start runs even when cancelled already (a stop during the write before it)
                            ensureActive()
                            body()
                        }.await()
                    }
                } finally {
                    // the run's thread goes on with the engine's own store calls: no interrupt the body left may reach them
                    Thread.interrupted()
                }
            }
            return withContext(context) {
                // onCancelling: interrupt at once, in the canceller's thread, while the body still blocks
                handle = coroutineContext.job.invokeOnCompletion(onCancelling = true) { if (it != null) inStep.cancel() }
                body()
            }
        } finally {
            handle?.dispose()
        }
    }

    /**
     * True when the caller is the workflow body's own coroutine and no other coroutine of the workflow is alive (a
     * branch in a plain `delay`, a `Mutex` or a shared `Deferred` is neither busy nor a durable waiter, but it would
     * wait behind a body that blocks the run's thread).
     */
    private suspend fun aloneInWorkflow(): Boolean {
        val job = currentCoroutineContext()[Job] ?: return false
        if (job !== runScope.coroutineContext[Job]) return false
        val timer = run.deadlineJob
        return job.children.none { it.isActive && it !== timer }
    }

    private sealed class Attempt<out T> {
        class Ok<T>(val value: T, val nanos: Long) : Attempt<T>()
        class Err(val error: Throwable, val nanos: Long) : Attempt<Nothing>()
    }

    /** Records a failed attempt; returns when the next one is due, or throws when there is none. */
    private suspend fun failedAttempt(id: String, attempt: Int, policy: RetryPolicy, error: Throwable, nanos: Long): Long {
        val failure = Failure.of(error)
        if (attempt >= policy.maxAttempts || !policy.shouldRetry(error)) {
            run.checkpoint(StoredRecord(id, RecordKind.STEP, RecordStatus.FAILED, failure = encodeFailure(failure), attempts = attempt))
            env.listeners.emit { StentEvent.StepFailed(runId, workflowName, id, attempt, nanos, failure, null, run.fencingToken) }
            throw stepFailed(id, attempt, failure)
        }
        val wakeAt = TimeMath.plus(env.clock.nowMs(), TimeMath.delayMs(policy.delayBefore(attempt + 1)))
        run.checkpoint(
            StoredRecord(id, RecordKind.STEP, RecordStatus.RETRYING, failure = encodeFailure(failure), attempts = attempt, wakeAt = wakeAt),
        )
        env.listeners.emit { StentEvent.StepFailed(runId, workflowName, id, attempt, nanos, failure, java.time.Instant.ofEpochMilli(wakeAt), run.fencingToken) }
        return wakeAt
    }

    private suspend fun <T> completeStep(id: String, codec: Codec<T>, value: T, attempt: Int, site: PayloadSite, cached: CacheUse?): T {
        val encoded = try {
            encodePayload(codec, value, maxBytes, site)
        } catch (e: PayloadException) {
            val failure = Failure.of(e)
            run.checkpoint(StoredRecord(id, RecordKind.STEP, RecordStatus.FAILED, failure = encodeFailure(failure), attempts = attempt))
            throw stepFailed(id, attempt, failure)
        }
        val record = StoredRecord(id, RecordKind.STEP, RecordStatus.COMPLETED, result = encoded, attempts = attempt)
        if (cached == null) {
            run.checkpointLater(record)
            return value
        }
        // another run may have stored its result first: the first value stored is the one every run records
        val written = run.checkpointCached(record, cached.key, cached.ttlMs)
        return if (written.result == encoded) value else decodePayload(codec, written.result ?: "null", site)
    }

    /** A step's [StepCache], checked: its key and its TTL in milliseconds. */
    private class CacheUse(val key: String, val ttlMs: Long)

    private fun stepFailed(id: String, attempts: Int, failure: Failure?) =
        StepFailedException(runId, workflowName, id, attempts, failure ?: Failure("unknown", "no failure was recorded"))

    // ---- timers --------------------------------------------------------------------------

    override suspend fun sleep(duration: Duration, id: String?) {
        checkNotInStep("sleep", id)
        if (duration.isNegative()) throw invalid("sleep: duration must not be negative, was $duration", id)
        sleepRecorded(id) { TimeMath.wakeAt(env.clock.nowMs(), duration) }
    }

    override suspend fun sleepUntil(instant: Instant, id: String?) {
        checkNotInStep("sleepUntil", id)
        sleepRecorded(id) { TimeMath.epochMs(instant) }
    }

    /** Records a timer due at [wakeAt] (null: no timer, only a cancel or the deadline ends it) and waits for it. */
    private suspend fun sleepRecorded(id: String?, wakeAt: () -> Long?) {
        val timerId = id?.also { checkUserId(it, "sleep") } ?: replay.nextId("sleep")
        val record = visit(timerId, RecordKind.SLEEP)
        if (record == null) beyondHistory("sleep", timerId, RecordKind.SLEEP)
        val due = if (record != null) record.wakeAt else busy {
            wakeAt().also { run.checkpoint(StoredRecord(timerId, RecordKind.SLEEP, RecordStatus.WAITING, wakeAt = it)) }
        }
        if (due == null) waitForever() else waitUntil(due, null)
    }

    /** Suspends until the database clock reaches [wakeAtMs]; the run may park or unload meanwhile. */
    private suspend fun waitUntil(wakeAtMs: Long, signalName: String?) {
        while (true) {
            val remaining = wakeAtMs - env.clock.nowMs()
            if (remaining <= 0) break
            beyondHistory(if (signalName == null) "wait" else "signal wait", null, null)
            waiting(Waiter(wakeAtMs, signalName)) { delay(remaining.milliseconds) }
        }
        busy { } // take a slot again before the branch goes on
    }

    /** A durable wait with no timer: the run unloads, and only a cancel or its deadline ends it. */
    private suspend fun waitForever(): Nothing {
        beyondHistory("wait", null, null)
        waiting(Waiter(null, null)) { awaitCancellation() }
    }

    // ---- signals -------------------------------------------------------------------------

    override suspend fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration?, id: String?): T {
        checkNotInStep("awaitSignal", id)
        WorkflowDefinition.validateName("signal name", name, runId, workflowName)
        SignalNames.checkUserName(name)?.let { throw invalid("awaitSignal('$name'): $it", id) }
        if (timeout != null && timeout.isNegative()) {
            throw invalid("awaitSignal('$name'): timeout must not be negative (null or INFINITE for none), was $timeout", id)
        }
        val limit = timeout?.takeUnless { it.isInfinite() }
        val waitId = id?.also { checkUserId(it, "signal wait") } ?: replay.nextId("signal:$name")
        val record = visit(waitId, RecordKind.SIGNAL)
        val site = PayloadSite("payload of signal '$name'", runId, workflowName, waitId)
        when (record?.status) {
            RecordStatus.COMPLETED -> return decodePayload(codec, record.result ?: "null", site)
            RecordStatus.TIMED_OUT -> throw SignalTimeoutException(runId, workflowName, waitId, name, limit ?: Duration.ZERO)
            else -> beyondHistory("awaitSignal", waitId, RecordKind.SIGNAL)
        }
        val deadline = record?.wakeAt ?: limit?.let { t ->
            busy {
                TimeMath.plus(env.clock.nowMs(), TimeMath.delayMs(t)).also {
                    run.checkpoint(StoredRecord(waitId, RecordKind.SIGNAL, RecordStatus.WAITING, wakeAt = it))
                }
            }
        }
        val wake = env.notifier.signalFor(runId)
        while (true) {
            currentCoroutineContext().ensureActive()
            val armed = wake.arm()
            // a poll while parked needs no slot: it only looks
            val consumed = busy(needsSlot = false) {
                run.storeCall("consuming signal '$name' for run '$runId'") { consumeSignal(runId, run.fencingToken, name, waitId) }
            }
            if (consumed != null) {
                replay.record(consumed)
                env.listeners.emit { StentEvent.SignalReceived(runId, workflowName, name, consumed.traceContext, run.fencingToken) }
                busy { } // take a slot again before the branch goes on
                return decodePayload(codec, consumed.result ?: "null", site)
            }
            val left = deadline?.let { it - env.clock.nowMs() }
            if (left != null && left <= 0) {
                busy { run.checkpoint(StoredRecord(waitId, RecordKind.SIGNAL, RecordStatus.TIMED_OUT, wakeAt = deadline)) }
                throw SignalTimeoutException(runId, workflowName, waitId, name, limit ?: Duration.ZERO)
            }
            val pause = minOf(left ?: Long.MAX_VALUE, SIGNAL_POLL_MS).milliseconds
            waiting(Waiter(deadline, name)) { wake.awaitArmed(armed, pause) }
        }
    }

    // ---- children --------------------------------------------------------------------------

    override suspend fun <I, O> startChild(workflow: WorkflowDefinition<I, O>, input: I, id: String?, detached: Boolean): ChildRun<O> =
        startChildRun(ChildSpec.of(workflow), input, id, detached)

    override suspend fun <I, O> startChild(
        workflowName: String,
        input: I,
        inputCodec: Codec<I>,
        outputCodec: Codec<O>,
        id: String?,
        detached: Boolean,
    ): ChildRun<O> {
        WorkflowDefinition.validateName("workflow name", workflowName, runId, this.workflowName)
        return startChildRun(ChildSpec(workflowName, inputCodec, outputCodec, DEFAULT_QUEUE, 0, null), input, id, detached)
    }

    /** What starting a child needs to know about its workflow. */
    private class ChildSpec<I, O>(
        val name: String,
        val inputCodec: Codec<I>,
        val outputCodec: Codec<O>,
        val queue: String,
        val priority: Int,
        val timeout: Duration?,
    ) {
        companion object {
            fun <I, O> of(workflow: WorkflowDefinition<I, O>) =
                ChildSpec(workflow.name, workflow.inputCodec, workflow.outputCodec, workflow.queue, workflow.priority, workflow.timeout)
        }

        fun newRun(id: String, input: String, parentId: String, parentCall: String, detached: Boolean, traceContext: String?) = NewRun(
            id, name, input, queue, priority, 0, null, timeout?.let { TimeMath.delayMs(it) }, parentId, parentCall, detached,
            traceContext = traceContext,
        )
    }

    /**
     * Starts the child once: its run id comes from this run and the call id, so a start repeated
     * by a replay (or after a crash between the start and its record) finds the run it made.
     */
    private suspend fun <I, O> startChildRun(spec: ChildSpec<I, O>, input: I, id: String?, detached: Boolean): ChildRun<O> {
        checkNotInStep("startChild", id)
        val callId = id?.also { checkUserId(it, "child"); checkNoSlash(it, "child") } ?: replay.nextId("child:${spec.name}")
        val childId = childRunId(callId)
        val record = visit(callId, RecordKind.CHILD)
        run.startedChildren = true
        if (record == null) {
            beyondHistory("startChild", callId, RecordKind.CHILD)
            busy {
                val encoded = encodePayload(spec.inputCodec, input, maxBytes, PayloadSite("input of child '$callId'", runId, workflowName, callId))
                // the child continues this run's trace (its execution is the current one here)
                val trace = env.listeners.capture()
                val created = run.storeCall("starting child '$callId' of run '$runId'") {
                    createRun(spec.newRun(childId, encoded, runId, callId, detached, trace))
                }
                if (!created.created && created.workflowName != spec.name) throw childConflict(callId, childId, created.workflowName, spec.name)
                env.listeners.emit { StentEvent.RunStarted(childId, spec.name, spec.queue, created.created, trace.takeIf { created.created }) }
                run.checkpoint(StoredRecord(callId, RecordKind.CHILD, RecordStatus.WAITING))
            }
        }
        return ChildRunImpl(callId, childId, spec.outputCodec)
    }

    private inner class ChildRunImpl<O>(private val callId: String, override val runId: String, private val codec: Codec<O>) : ChildRun<O> {
        override suspend fun await(): O {
            checkNotInStep("await", callId)
            val name = ChildOutcome.signalName(callId)
            val wake = env.notifier.signalFor(this@WorkflowScopeImpl.runId)
            while (true) {
                currentCoroutineContext().ensureActive()
                // recorded already: by a replay, or by another branch awaiting the same child
                replay.peek(callId)?.takeIf { it.status == RecordStatus.COMPLETED }?.let { return outcome(it) }
                beyondHistory("await of child", callId, RecordKind.CHILD)
                val armed = wake.arm()
                // a poll while parked needs no slot: it only looks
                val consumed = busy(needsSlot = false) {
                    run.storeCall("collecting child '$callId' of run '${this@WorkflowScopeImpl.runId}'") {
                        consumeSignal(this@WorkflowScopeImpl.runId, run.fencingToken, name, callId)
                    }
                }
                if (consumed != null) {
                    val record = StoredRecord(callId, RecordKind.CHILD, RecordStatus.COMPLETED, result = consumed.result)
                    replay.record(record)
                    busy { } // take a slot again before the branch goes on
                    return outcome(record)
                }
                waiting(Waiter(null, name)) { wake.awaitArmed(armed, SIGNAL_POLL_MS.milliseconds) }
            }
        }

        private fun outcome(record: StoredRecord): O = childOutput(record, codec, runId)
    }

    /** The child's output from its recorded outcome, or its failure as a [ChildFailedException]. */
    private fun <O> childOutput(record: StoredRecord, codec: Codec<O>, childId: String): O {
        val outcome = ChildOutcome.decode(record.result ?: throw IllegalStateException("child record '${record.stepId}' has no outcome"))
        if (outcome.status == RunStatus.COMPLETED) {
            return decodePayload(codec, outcome.output ?: "null", PayloadSite("output of child '${record.stepId}'", runId, workflowName, record.stepId))
        }
        val failure = decodeFailure(outcome.failure) ?: Failure("dev.stent.Cancelled", "child run '$childId' was cancelled")
        throw ChildFailedException(runId, workflowName, record.stepId, childId, outcome.status, failure)
    }

    /**
     * The map: starts children in batches (recording how many it started, so a replay starts no
     * more), then collects their outcomes in batches as they arrive, each recorded as
     * `<map id>/<index>`. No coroutine per child: one loop, and the outputs array.
     */
    override suspend fun <I, O> map(workflow: WorkflowDefinition<I, O>, inputs: List<I>, id: String?): List<O> {
        checkNotInStep("map", id)
        val mapId = id?.also { checkUserId(it, "map"); checkNoSlash(it, "map") } ?: replay.nextId("map:${workflow.name}")
        val spec = ChildSpec.of(workflow)
        val progress = visit(mapId, RecordKind.CHILD)
        run.startedChildren = true
        val n = inputs.size
        var started = progress?.result?.toInt() ?: 0
        val outcomes = arrayOfNulls<StoredRecord>(n)
        var collected = 0
        fun take(record: StoredRecord) {
            val i = record.stepId.substringAfterLast('/').toIntOrNull()?.takeIf { it in 0 until n } ?: return
            if (outcomes[i] == null) collected++
            outcomes[i] = record
        }
        // the outcomes a previous execution collected
        for (i in 0 until minOf(started, n)) replay.peek("$mapId/$i")?.let { take(visit("$mapId/$i", RecordKind.CHILD) ?: it) }
        failedChild(outcomes, mapId)
        val prefix = ChildOutcome.signalName("$mapId/")
        val wake = env.notifier.signalFor(runId)
        while (collected < n) {
            currentCoroutineContext().ensureActive()
            beyondHistory("map", mapId, RecordKind.CHILD)
            if (started < n) {
                busy {
                    val trace = env.listeners.capture()
                    val batch = (started until minOf(n, started + MAP_BATCH)).map { i ->
                        val call = "$mapId/$i"
                        val encoded = encodePayload(spec.inputCodec, inputs[i], maxBytes, PayloadSite("input $i of map '$mapId'", runId, workflowName, mapId))
                        spec.newRun(childRunId(call), encoded, runId, call, false, trace)
                    }
                    run.storeCall("starting children of map '$mapId' of run '$runId'") { createRuns(batch) }
                        .forEachIndexed { k, created ->
                            if (!created.created && created.workflowName != spec.name) throw childConflict(mapId, batch[k].id, created.workflowName, spec.name)
                            env.listeners.emit { StentEvent.RunStarted(batch[k].id, spec.name, spec.queue, created.created, trace.takeIf { created.created }) }
                        }
                    started += batch.size
                    run.checkpoint(StoredRecord(mapId, RecordKind.CHILD, RecordStatus.WAITING, result = started.toString()))
                }
                continue
            }
            val armed = wake.arm()
            val consumed = busy(needsSlot = false) {
                run.storeCall("collecting children of map '$mapId' of run '$runId'") {
                    consumeSignals(runId, run.fencingToken, prefix, "$mapId/", RecordKind.CHILD, MAP_BATCH)
                }
            }
            if (consumed.isNotEmpty()) {
                busy { } // take a slot again before going on
                consumed.forEach {
                    replay.recordReached(it)
                    take(it)
                }
                failedChild(outcomes, mapId)
                continue
            }
            waiting(Waiter(null, "$prefix*")) { wake.awaitArmed(armed, SIGNAL_POLL_MS.milliseconds) }
        }
        if (progress?.status != RecordStatus.COMPLETED) busy {
            run.checkpoint(StoredRecord(mapId, RecordKind.CHILD, RecordStatus.COMPLETED, result = started.toString()))
        }
        return outcomes.mapIndexed { i, record -> childOutput(record!!, spec.outputCodec, childRunId("$mapId/$i")) }
    }

    /** Throws the failure of the lowest-index failed child collected so far: the same on every replay. */
    private fun failedChild(outcomes: Array<StoredRecord?>, mapId: String) {
        for ((i, record) in outcomes.withIndex()) {
            if (record == null) continue
            if (ChildOutcome.decode(record.result ?: continue).status != RunStatus.COMPLETED) {
                childOutput(record, Codecs.kotlinx(kotlinx.serialization.json.JsonElement.serializer()), childRunId("$mapId/$i"))
            }
        }
    }

    /** A child's run id: `<run id>/<call id>`, or a digest of it when that is too long for an id. */
    private fun childRunId(callId: String): String {
        val id = "$runId/$callId"
        if (id.length <= MAX_RUN_ID) return id
        val digest = java.security.MessageDigest.getInstance("SHA-256").digest(id.toByteArray())
        return "${runId.take(100)}/" + digest.joinToString("") { "%02x".format(it) }.take(40)
    }

    /** '/' separates a parent's id from its children's: a child or map id with one could meet another's. */
    private fun checkNoSlash(id: String, what: String) {
        if ('/' in id) throw invalid("invalid $what id '$id': '/' separates a parent run's id from its children's; use '-' or '.'", id)
    }

    private fun childConflict(callId: String, childId: String, existing: String, wanted: String) = invalid(
        "child '$callId': run '$childId' exists already as workflow '$existing', not '$wanted'; give the call another id",
        callId,
    )

    // ---- events ----------------------------------------------------------------------------

    override suspend fun <T> setEvent(key: String, value: T, codec: Codec<T>) {
        checkNotInStep("setEvent", key)
        WorkflowDefinition.validateName("event key", key, runId, workflowName)
        if ('#' in key) throw invalid("invalid event key '$key': '#' is reserved for versions; use '-' or '.'", null)
        val id = replay.nextId(EventRecords.prefix(key))
        if (visit(id, RecordKind.EVENT) != null) return
        beyondHistory("setEvent", id, RecordKind.EVENT)
        busy {
            val encoded = encodePayload(codec, value, maxBytes, PayloadSite("value of event '$key'", runId, workflowName, id))
            run.checkpoint(StoredRecord(id, RecordKind.EVENT, RecordStatus.COMPLETED, result = encoded))
        }
        env.notifier.signalSent(runId) // a client of this process waiting for it looks now
    }

    // ---- recorded values -----------------------------------------------------------------

    override suspend fun now(id: String?): Instant =
        Instant.ofEpochMilli(recorded(id, "now", RecordKind.NOW, longCodec) { env.clock.nowMs() })

    override suspend fun randomUuid(id: String?): UUID =
        UUID.fromString(recorded(id, "uuid", RecordKind.UUID, stringCodec) { UUID.randomUUID().toString() })

    override suspend fun random(id: String?): Double =
        recorded(id, "random", RecordKind.RANDOM, doubleCodec) { Random.nextDouble() }

    private suspend fun <T> recorded(explicitId: String?, prefix: String, kind: RecordKind, codec: Codec<T>, make: () -> T): T {
        checkNotInStep(prefix, explicitId)
        val id = explicitId?.also { checkUserId(it, prefix) } ?: replay.nextId(prefix)
        val record = visit(id, kind)
        if (record?.result != null) return decodePayload(codec, record.result, PayloadSite("recorded $prefix", runId, workflowName, id))
        beyondHistory(prefix, id, kind)
        val value = make()
        busy { run.checkpoint(StoredRecord(id, kind, RecordStatus.COMPLETED, result = codec.encode(value))) }
        return value
    }

    // ---- versions and continue-as-new ---------------------------------------------------------

    override suspend fun version(changeId: String, minSupported: Int, maxSupported: Int): Int {
        checkNotInStep("version", changeId)
        WorkflowDefinition.validateName("change id", changeId, runId, workflowName)
        if (minSupported > maxSupported) {
            throw invalid("version('$changeId'): minSupported ($minSupported) must not exceed maxSupported ($maxSupported)", null)
        }
        val id = "version:$changeId"
        // a change asked about again (a loop, a helper, another branch) has its answer already
        val mine = kotlinx.coroutines.CompletableDeferred<Int>()
        val asked = versions.putIfAbsent(changeId, mine)
        val version = if (asked != null) {
            asked.await()
        } else {
            try {
                // decided whole even if this branch is cancelled meanwhile: other branches may be waiting for the answer
                withContext(kotlinx.coroutines.NonCancellable) { decideVersion(id, maxSupported) }.also { mine.complete(it) }
            } catch (e: Throwable) {
                mine.completeExceptionally(e)
                throw e
            }
        }
        if (version !in minSupported..maxSupported) {
            throw replay.fail(
                NonDeterminismException(
                    runId, workflowName, id, "version $version of change '$changeId'",
                    "supports versions $minSupported..$maxSupported only (the path of version $version was removed while this run needs it); " +
                        "deploy code that keeps it until no such run is left",
                ),
            )
        }
        return version
    }

    /** Answers, in this execution, of the changes asked about so far. */
    private val versions = java.util.concurrent.ConcurrentHashMap<String, kotlinx.coroutines.CompletableDeferred<Int>>()

    /** The recorded version of change [id], or the one decided now (and recorded): see [WorkflowScope.version]. */
    private suspend fun decideVersion(id: String, maxSupported: Int): Int {
        visit(id, RecordKind.VERSION)?.result?.toIntOrNull()?.let { return it }
        // records the code has not reached yet were written by code that went past here before this call existed;
        // first let branches launched just before replay what they can (replayed calls do not suspend)
        var unreached = replay.unreached().size
        while (unreached > 0) {
            repeat(VERSION_YIELDS) { yield() }
            val now = replay.unreached().size
            if (now == unreached) break
            unreached = now
        }
        val decided = if (unreached == 0) maxSupported else WorkflowScope.DEFAULT_VERSION
        if (env.replayOnly == null) busy { run.checkpoint(StoredRecord(id, RecordKind.VERSION, RecordStatus.COMPLETED, result = decided.toString())) }
        return decided
    }

    override suspend fun continueAsNew(input: Any?): Nothing {
        checkNotInStep("continueAsNew", null)
        @Suppress("UNCHECKED_CAST")
        val codec = definition.inputCodec as Codec<Any?>
        val encoded = encodePayload(codec, input, maxBytes, PayloadSite("input of the run continuing '$runId'", runId, workflowName))
        throw run.continueAsNew(encoded)
    }

    // ---- bookkeeping ---------------------------------------------------------------------

    /**
     * In a replay check ([RunEnvironment.replayOnly]), the code has reached what the history does not
     * record: this branch goes no further (it would do new work). Otherwise nothing.
     */
    private suspend fun beyondHistory(call: String, id: String?, kind: RecordKind?) {
        val frontier = env.replayOnly ?: return
        frontier.reached(call, id, kind)
        awaitCancellation()
    }

    /** Reaches [id] in this replay: its record, or null; a duplicate or a kind mismatch is fatal. */
    private suspend fun visit(id: String, kind: RecordKind): StoredRecord? {
        currentCoroutineContext().ensureActive()
        return replay.visit(id, kind)
    }

    private fun checkUserId(id: String, what: String) {
        WorkflowDefinition.validateName("$what id", id, runId, workflowName)
        if ('#' in id) {
            throw invalid("invalid $what id '$id': '#' is reserved for generated ids; use '-' or '.'", id)
        }
    }

    /** An [InvalidArgumentException] that names this run (and [stepId] when known). */
    private fun invalid(message: String, stepId: String?) =
        InvalidArgumentException("$message (workflow '$workflowName', run '$runId')", runId, workflowName, stepId)

    /**
     * Stent calls belong in the workflow body, never in a step body: a step body may run again, and
     * its calls would not be replayed in the same place. Fails the run, even if the code catches it.
     */
    private suspend fun checkNotInStep(call: String, id: String?) {
        val outer = currentCoroutineContext()[InStep] ?: return
        throw replay.misuse(call, id, outer.stepId)
    }

    /**
     * Marks the run busy (doing work or I/O) around [block], first taking an execution slot again
     * if the run parked ([needsSlot]); the end of the last busy section may let it park or unload.
     */
    private suspend inline fun <R> busy(needsSlot: Boolean = true, block: () -> R): R {
        state.enterBusy()
        try {
            if (needsSlot) run.ensureSlot()
            return block()
        } finally {
            if (state.exitBusy()) scheduleQuiescenceCheck()
        }
    }

    /** Runs [block] (a suspension) as a durable wait that counts toward unloading the run. */
    private suspend inline fun <R> waiting(waiter: Waiter, block: () -> R): R {
        if (state.addWaiter(waiter)) scheduleQuiescenceCheck()
        try {
            return block()
        } finally {
            // if this branch ends or waits again without another call, the others may be left all waiting
            if (state.removeWaiter(waiter)) scheduleQuiescenceCheck()
        }
    }

    /**
     * After letting every ready branch run (a few yields on the run's serial dispatcher), unloads
     * the run if every branch still waits and the earliest wake-up is beyond the threshold.
     */
    private fun scheduleQuiescenceCheck() {
        runScope.launch {
            repeat(QUIESCENCE_YIELDS) { yield() }
            when (val decision = state.quiescence(env.clock.nowMs(), env.config.unloadThreshold.inWholeMilliseconds)) {
                is Quiescence.Unload -> run.stop(StopReason.Unload(decision.wakeAtMs, decision.signalNames))
                is Quiescence.Stay -> run.park { state.quiescence(env.clock.nowMs(), env.config.unloadThreshold.inWholeMilliseconds) }
                Quiescence.Busy -> Unit
            }
        }
    }

    private companion object {
        val longCodec = Codecs.kotlinx(Long.serializer())
        val stringCodec = Codecs.kotlinx(String.serializer())
        val doubleCodec = Codecs.kotlinx(Double.serializer())
        const val QUIESCENCE_YIELDS = 3
        const val VERSION_YIELDS = 3
        const val SIGNAL_POLL_MS = 1_000L

        /** Children a map starts, or outcomes it collects, per store call. */
        const val MAP_BATCH = 500

        /** The longest run id a store keeps. */
        const val MAX_RUN_ID = 200
        const val DEFAULT_QUEUE = "default"
    }
}
