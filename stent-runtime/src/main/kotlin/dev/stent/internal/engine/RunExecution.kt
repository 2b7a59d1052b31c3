package dev.stent.internal.engine

import dev.stent.Failure
import dev.stent.InternalStentApi
import dev.stent.NonDeterminismException
import dev.stent.RunStatus
import dev.stent.StentException
import dev.stent.StentStoreException
import dev.stent.WorkflowDefinition
import dev.stent.internal.PayloadSite
import dev.stent.internal.decodePayload
import dev.stent.internal.encodeFailure
import dev.stent.internal.encodePayload
import dev.stent.internal.worker.WorkerEngine
import dev.stent.store.ClaimedRun
import dev.stent.store.LeaseLostException
import dev.stent.store.StepRecord
import dev.stent.store.UnloadOutcome
import dev.stent.store.WriteOutcome
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Job
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.isActive
import kotlinx.coroutines.withContext
import java.util.concurrent.atomic.AtomicReference

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

    /** The worker shuts down: give the lease back. */
    object Shutdown : StopReason() { override fun toString() = "worker shutdown" }

    /** The database failed under the run: give the lease back if it can, else let it expire. */
    object StoreFailure : StopReason() { override fun toString() = "database failure" }
}

/** Cancels a run's coroutines; never escapes the run. */
internal class RunStopped(val reason: StopReason) : CancellationException("run stopped: $reason")

/** The end of a run's body. */
private sealed class Outcome {
    class Completed(val output: String) : Outcome()
    class Failed(val failure: Failure) : Outcome()
    class Stopped(val reason: StopReason) : Outcome()
}

/**
 * One claimed run, executed by replay in three phases: [execute] runs the body against the
 * records loaded at claim ([WorkflowScopeImpl] memoizes steps and waits), then applies the
 * outcome with one fenced write: finish, unload, release or nothing.
 */
@OptIn(InternalStentApi::class)
internal class RunExecution(val worker: WorkerEngine, private val claimed: ClaimedRun) {
    val runId: String = claimed.id
    val token: Long = claimed.token
    val workflow: String = claimed.workflow
    val state = RunState(claimed.records)

    /** Set once by the claim loop before the job starts. */
    @Volatile
    var job: Job? = null

    /** First stop reason wins. */
    private val stopReason = AtomicReference<StopReason?>(null)

    fun stop(reason: StopReason) {
        if (stopReason.compareAndSet(null, reason)) job?.cancel(RunStopped(reason))
    }

    val isStopping: Boolean get() = stopReason.get() != null

    suspend fun execute() {
        worker.notifier.onCancel(runId) { stop(StopReason.Cancel) }
        try {
            val outcome = if (claimed.claimCount > worker.config.maxClaims) {
                Outcome.Failed(poisonFailure())
            } else {
                @Suppress("UNCHECKED_CAST")
                runBody(worker.config.definitions.getValue(workflow) as WorkflowDefinition<Any?, Any?>)
            }
            withContext(NonCancellable) { apply(outcome) }
        } finally {
            worker.notifier.removeCancel(runId)
        }
    }

    private suspend fun <I, O> runBody(definition: WorkflowDefinition<I, O>): Outcome {
        val maxBytes = worker.stent.options.maxPayloadBytes
        return try {
            val input = decodePayload(definition.inputCodec, claimed.input, PayloadSite("input", runId, workflow))
            val output = coroutineScope {
                val scope = WorkflowScopeImpl(this@RunExecution, definition, this)
                definition.body.invoke(scope, input)
            }
            state.fatal?.let { return Outcome.Failed(Failure.of(it)) }
            state.unvisited().firstOrNull()?.let { return Outcome.Failed(Failure.of(notReached(it))) }
            Outcome.Completed(encodePayload(definition.outputCodec, output, maxBytes, PayloadSite("output", runId, workflow)))
        } catch (e: Throwable) {
            val reason = stopReason.get()
            when {
                reason != null -> Outcome.Stopped(reason)
                e is CancellationException && !currentCoroutineContext().isActive -> Outcome.Stopped(StopReason.Shutdown)
                e is Error && e !is StackOverflowError && e !is AssertionError -> throw e
                else -> Outcome.Failed(Failure.of(state.fatal ?: e))
            }
        }
    }

    private fun notReached(record: StepRecord) = NonDeterminismException(
        runId, workflow, record.stepId,
        "a ${record.kind} '${record.stepId}'", "finished without reaching it",
    )

    private fun poisonFailure() = Failure(
        "dev.stent.PoisonRun",
        "run '$runId' of workflow '$workflow' was claimed ${claimed.claimCount} times without finishing " +
            "(its worker died or lost the lease each time); the poison guard (maxClaims=${worker.config.maxClaims}) failed it. " +
            "Inspect it with describe(); fix the cause and start it again",
    )

    private suspend fun apply(outcome: Outcome) {
        try {
            when (outcome) {
                is Outcome.Completed -> finish(RunStatus.COMPLETED, outcome.output, null)
                is Outcome.Failed -> {
                    worker.log.info("run {} of workflow {} failed: {}", runId, workflow, outcome.failure)
                    finish(RunStatus.FAILED, null, encodeFailure(outcome.failure))
                }
                is Outcome.Stopped -> when (val reason = outcome.reason) {
                    is StopReason.Unload -> {
                        val result = worker.access.call("unloading run '$runId'") {
                            unload(runId, token, reason.wakeAtMs, reason.signalNames)
                        }
                        when (result) {
                            UnloadOutcome.READY -> worker.notifier.workAvailable.fire()
                            UnloadOutcome.CANCELLED -> worker.notifier.runFinished(runId)
                            else -> Unit
                        }
                    }
                    StopReason.Cancel -> finish(RunStatus.CANCELLED, null, null)
                    StopReason.Shutdown, StopReason.StoreFailure -> {
                        worker.access.call("releasing run '$runId'") { release(runId, token) }
                        worker.notifier.workAvailable.fire()
                    }
                    StopReason.LeaseLost -> worker.log.warn("run {}: lease lost; another worker resumes it", runId)
                }
            }
        } catch (e: StentException) {
            worker.log.warn("run {}: could not record its outcome ({}); its lease will expire and another claim resumes it", runId, e.message)
        } catch (e: LeaseLostException) {
            worker.log.warn("run {}: lease lost before its outcome was recorded", runId)
        }
    }

    private suspend fun finish(status: RunStatus, output: String?, failure: String?) {
        val result = blockingOnRunThread("finishing run '$runId'") { worker.access.finish(runId, token, status, output, failure) }
        if (result == WriteOutcome.OK) worker.notifier.runFinished(runId)
        else worker.log.warn("run {}: lease lost before it could finish as {}", runId, status)
    }

    /** Writes [record] with this run's fencing token; stops the run when the lease is gone or the database fails. */
    suspend fun checkpoint(record: StepRecord) {
        val result = storeCall("checkpointing '${record.stepId}' of run '$runId'") { worker.access.checkpoint(runId, token, record) }
        if (result == WriteOutcome.LEASE_LOST) throw lost()
        state.record(record)
    }

    /** Runs a store call for this run; a database failure stops the run (it is released or its lease expires). */
    suspend fun <T> storeCall(what: String, block: dev.stent.store.WorkflowStore.() -> T): T = try {
        blockingOnRunThread(what, block)
    } catch (e: StentStoreException) {
        stop(StopReason.StoreFailure)
        throw e
    } catch (e: LeaseLostException) {
        throw lost()
    }

    // the run's own thread is an IO thread: block on it rather than hop to the store dispatcher and back
    private suspend fun <T> blockingOnRunThread(what: String, block: dev.stent.store.WorkflowStore.() -> T): T =
        if (currentCoroutineContext()[RunThread] != null) worker.access.inline(what, block) else worker.access.call(what, block)

    private fun lost(): RunStopped {
        stop(StopReason.LeaseLost)
        return RunStopped(StopReason.LeaseLost)
    }
}
