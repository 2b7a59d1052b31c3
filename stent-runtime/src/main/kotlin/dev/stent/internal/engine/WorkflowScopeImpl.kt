package dev.stent.internal.engine

import dev.stent.Codec
import dev.stent.Codecs
import dev.stent.DuplicateStepIdException
import dev.stent.Failure
import dev.stent.InternalStentApi
import dev.stent.NonDeterminismException
import dev.stent.PayloadException
import dev.stent.RetryPolicy
import dev.stent.SignalTimeoutException
import dev.stent.StepFailedException
import dev.stent.StepScope
import dev.stent.WorkflowDefinition
import dev.stent.WorkflowMisuseException
import dev.stent.WorkflowScope
import dev.stent.internal.PayloadSite
import dev.stent.internal.decodeFailure
import dev.stent.internal.decodePayload
import dev.stent.internal.encodeFailure
import dev.stent.internal.encodePayload
import dev.stent.store.StepKind
import dev.stent.store.StepRecord
import dev.stent.store.StepStatus
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import kotlinx.coroutines.yield
import kotlinx.serialization.builtins.serializer
import java.time.Instant
import java.util.UUID
import kotlin.coroutines.AbstractCoroutineContextElement
import kotlin.coroutines.CoroutineContext
import kotlin.random.Random
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Present in the context of a running step body, to catch nested steps. */
private class InStep(val stepId: String) : AbstractCoroutineContextElement(Key) {
    companion object Key : CoroutineContext.Key<InStep>
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
    private val worker get() = run.worker
    private val maxBytes get() = worker.stent.options.maxPayloadBytes

    // ---- steps ---------------------------------------------------------------------------

    override suspend fun <T> step(id: String, codec: Codec<T>, retry: RetryPolicy?, block: suspend StepScope.() -> T): T {
        checkUserId(id, "step")
        currentCoroutineContext()[InStep]?.let { outer ->
            throw state.fail(
                WorkflowMisuseException(
                    runId, workflowName, id,
                    "step '$id' was called inside step '${outer.stepId}' in workflow '$workflowName' (run '$runId'): " +
                        "steps cannot nest; call it from the workflow body, or make it plain code inside the outer step",
                ),
            )
        }
        val record = visit(id, StepKind.STEP)
        val site = PayloadSite("result of step '$id'", runId, workflowName, id)
        var attempts = 0
        when (record?.status) {
            StepStatus.COMPLETED -> return decodePayload(codec, record.result ?: "null", site)
            StepStatus.FAILED -> throw stepFailed(id, record.attempts, decodeFailure(record.failure))
            StepStatus.RETRYING -> {
                attempts = record.attempts
                record.wakeAt?.let { waitUntil(it, null) }
            }
            else -> Unit
        }
        val policy = retry ?: definition.retryPolicy
        while (true) {
            currentCoroutineContext().ensureActive()
            val attempt = attempts + 1
            val wakeAt = busy {
                val outcome = try {
                    Attempt.Ok(withContext(InStep(id)) { StepScopeImpl(runId, id, attempt).block() })
                } catch (e: Throwable) {
                    if (e is CancellationException && (run.isStopping || !currentCoroutineContext().isActive)) throw e
                    if (e is Error && e !is StackOverflowError && e !is AssertionError) throw e
                    Attempt.Err(e)
                }
                when (outcome) {
                    is Attempt.Ok -> return@step completeStep(id, codec, outcome.value, attempt, site)
                    is Attempt.Err -> failedAttempt(id, attempt, policy, outcome.error)
                }
            }
            attempts = attempt
            waitUntil(wakeAt, null)
        }
    }

    private sealed class Attempt<out T> {
        class Ok<T>(val value: T) : Attempt<T>()
        class Err(val error: Throwable) : Attempt<Nothing>()
    }

    /** Records a failed attempt; returns when the next one is due, or throws when there is none. */
    private suspend fun failedAttempt(id: String, attempt: Int, policy: RetryPolicy, error: Throwable): Long {
        val failure = Failure.of(error)
        if (attempt >= policy.maxAttempts || !policy.shouldRetry(error)) {
            run.checkpoint(StepRecord(id, StepKind.STEP, StepStatus.FAILED, failure = encodeFailure(failure), attempts = attempt))
            throw stepFailed(id, attempt, failure)
        }
        val wakeAt = worker.nowMs() + policy.delayBefore(attempt + 1).inWholeMilliseconds
        run.checkpoint(
            StepRecord(id, StepKind.STEP, StepStatus.RETRYING, failure = encodeFailure(failure), attempts = attempt, wakeAt = wakeAt),
        )
        return wakeAt
    }

    private suspend fun <T> completeStep(id: String, codec: Codec<T>, value: T, attempt: Int, site: PayloadSite): T {
        val encoded = try {
            encodePayload(codec, value, maxBytes, site)
        } catch (e: PayloadException) {
            val failure = Failure.of(e)
            run.checkpoint(StepRecord(id, StepKind.STEP, StepStatus.FAILED, failure = encodeFailure(failure), attempts = attempt))
            throw stepFailed(id, attempt, failure)
        }
        run.checkpoint(StepRecord(id, StepKind.STEP, StepStatus.COMPLETED, result = encoded, attempts = attempt))
        return value
    }

    private fun stepFailed(id: String, attempts: Int, failure: Failure?) =
        StepFailedException(runId, workflowName, id, attempts, failure ?: Failure("unknown", "no failure was recorded"))

    // ---- timers --------------------------------------------------------------------------

    override suspend fun sleep(duration: Duration, id: String?) {
        require(!duration.isNegative()) { "sleep: duration must not be negative, was $duration (workflow '$workflowName', run '$runId')" }
        sleepRecorded(id) { worker.nowMs() + duration.inWholeMilliseconds }
    }

    override suspend fun sleepUntil(instant: Instant, id: String?) {
        sleepRecorded(id) { instant.toEpochMilli() }
    }

    private suspend fun sleepRecorded(id: String?, wakeAt: () -> Long) {
        val timerId = id?.also { checkUserId(it, "sleep") } ?: state.nextId("sleep")
        val record = visit(timerId, StepKind.SLEEP)
        val due = record?.wakeAt ?: busy {
            wakeAt().also { run.checkpoint(StepRecord(timerId, StepKind.SLEEP, StepStatus.WAITING, wakeAt = it)) }
        }
        waitUntil(due, null)
    }

    /** Suspends until the database clock reaches [wakeAtMs]; the run may unload meanwhile. */
    private suspend fun waitUntil(wakeAtMs: Long, signalName: String?) {
        while (true) {
            val remaining = wakeAtMs - worker.nowMs()
            if (remaining <= 0) return
            waiting(Waiter(wakeAtMs, signalName)) { delay(remaining.milliseconds) }
        }
    }

    // ---- signals -------------------------------------------------------------------------

    override suspend fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration?, id: String?): T {
        WorkflowDefinition.validateName("signal name", name)
        require(timeout == null || timeout.isPositive()) { "awaitSignal('$name'): timeout must be positive, was $timeout" }
        val waitId = id?.also { checkUserId(it, "signal wait") } ?: state.nextId("signal:$name")
        val record = visit(waitId, StepKind.SIGNAL)
        val site = PayloadSite("payload of signal '$name'", runId, workflowName, waitId)
        when (record?.status) {
            StepStatus.COMPLETED -> return decodePayload(codec, record.result ?: "null", site)
            StepStatus.TIMED_OUT -> throw SignalTimeoutException(runId, workflowName, waitId, name, timeout ?: Duration.ZERO)
            else -> Unit
        }
        val deadline = record?.wakeAt ?: timeout?.let { t ->
            busy {
                (worker.nowMs() + t.inWholeMilliseconds).also {
                    run.checkpoint(StepRecord(waitId, StepKind.SIGNAL, StepStatus.WAITING, wakeAt = it))
                }
            }
        }
        val wake = worker.notifier.signalFor(runId)
        while (true) {
            currentCoroutineContext().ensureActive()
            val armed = wake.arm()
            val consumed = busy { run.storeCall("consuming signal '$name' for run '$runId'") { consumeSignal(runId, run.token, name, waitId) } }
            if (consumed != null) {
                state.record(consumed)
                return decodePayload(codec, consumed.result ?: "null", site)
            }
            val left = deadline?.let { it - worker.nowMs() }
            if (left != null && left <= 0) {
                busy { run.checkpoint(StepRecord(waitId, StepKind.SIGNAL, StepStatus.TIMED_OUT, wakeAt = deadline)) }
                throw SignalTimeoutException(runId, workflowName, waitId, name, timeout ?: Duration.ZERO)
            }
            val pause = minOf(left ?: Long.MAX_VALUE, SIGNAL_POLL_MS).milliseconds
            waiting(Waiter(deadline, name)) { wake.awaitArmed(armed, pause) }
        }
    }

    // ---- recorded values -----------------------------------------------------------------

    override suspend fun now(id: String?): Instant =
        Instant.ofEpochMilli(recorded(id, "now", StepKind.NOW, longCodec) { worker.nowMs() })

    override suspend fun randomUuid(id: String?): UUID =
        UUID.fromString(recorded(id, "uuid", StepKind.UUID, stringCodec) { UUID.randomUUID().toString() })

    override suspend fun random(id: String?): Double =
        recorded(id, "random", StepKind.RANDOM, doubleCodec) { Random.nextDouble() }

    private suspend fun <T> recorded(explicitId: String?, prefix: String, kind: StepKind, codec: Codec<T>, make: () -> T): T {
        val id = explicitId?.also { checkUserId(it, prefix) } ?: state.nextId(prefix)
        val record = visit(id, kind)
        if (record?.result != null) return decodePayload(codec, record.result, PayloadSite("recorded $prefix", runId, workflowName, id))
        val value = make()
        busy { run.checkpoint(StepRecord(id, kind, StepStatus.COMPLETED, result = codec.encode(value))) }
        return value
    }

    // ---- bookkeeping ---------------------------------------------------------------------

    /** Reaches [id] in this replay: its record, or null; a duplicate or a kind mismatch is fatal. */
    private suspend fun visit(id: String, kind: StepKind): StepRecord? {
        currentCoroutineContext().ensureActive()
        return when (val v = state.visit(id)) {
            RunState.Visit.Duplicate -> throw state.fail(DuplicateStepIdException(runId, workflowName, id))
            is RunState.Visit.First -> {
                val record = v.record
                if (record != null && record.kind != kind) {
                    throw state.fail(
                        NonDeterminismException(
                            runId, workflowName, id,
                            "a ${RunState.kindName(record.kind)} '$id'", "calls ${RunState.kindName(kind)} '$id'",
                        ),
                    )
                }
                record
            }
        }
    }

    private fun checkUserId(id: String, what: String) {
        WorkflowDefinition.validateName("$what id", id)
        require('#' !in id) {
            "invalid $what id '$id' in workflow '$workflowName' (run '$runId'): '#' is reserved for generated ids; use '-' or '.'"
        }
    }

    /** Marks the run busy (doing work or I/O) around [block]; the end of the last busy section may let it unload. */
    private suspend inline fun <R> busy(block: () -> R): R {
        state.enterBusy()
        try {
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
            val decision = state.quiescence(worker.nowMs(), worker.config.unloadThreshold.inWholeMilliseconds)
            if (decision is Quiescence.Unload) run.stop(StopReason.Unload(decision.wakeAtMs, decision.signalNames))
        }
    }

    private companion object {
        val longCodec = Codecs.kotlinx(Long.serializer())
        val stringCodec = Codecs.kotlinx(String.serializer())
        val doubleCodec = Codecs.kotlinx(Double.serializer())
        const val QUIESCENCE_YIELDS = 3
        const val SIGNAL_POLL_MS = 1_000L
    }
}
