package dev.stent.java

import dev.stent.Codec
import dev.stent.FailureKind
import dev.stent.InternalStentApi
import dev.stent.QueueInfo
import dev.stent.QueueLimits
import dev.stent.RunEvent
import dev.stent.RunInfo
import dev.stent.RunStatus
import dev.stent.ScheduleInfo
import dev.stent.Stent
import dev.stent.StentClient
import dev.stent.WorkflowDefinition
import dev.stent.runtime.internal.CallerTrace
import kotlinx.coroutines.future.future
import java.time.Duration
import java.time.ZoneId
import java.time.ZoneOffset
import java.util.concurrent.CompletableFuture
import kotlin.time.toKotlinDuration

/**
 * The client for Java: every call returns a [CompletableFuture]. Cancelling a returned future
 * stops the waiting, never the run (use [cancel] for that). Payloads use [JavaCodecs.forClass],
 * so records, POJOs and Kotlin `@Serializable` classes all work.
 *
 * ```java
 * FutureClient client = FutureClient.of(stent);
 * RunRef<Receipt> run = client.start(order, new OrderRequest("o-42", 1999), StartOptions.withId("o-42")).join();
 * client.signal("o-42", "approval", new Approval("ana")).join();
 * Receipt receipt = run.result().join();
 * ```
 */
@OptIn(InternalStentApi::class)
public class FutureClient private constructor(private val stent: Stent) {
    private val client: StentClient get() = stent.client

    // the caller's trace context is read here, on its thread: the call runs on another
    private fun <T> async(block: suspend () -> T): CompletableFuture<T> = stent.scope.future(CallerTrace.of(stent.listeners)) { block() }

    /** [async] for a call without a result. */
    private fun done(block: suspend () -> Unit): CompletableFuture<Void?> = async {
        block()
        null
    }

    /** Starts a run of [workflow]; see the Kotlin `StentClient.start`. */
    @JvmOverloads
    public fun <I, O> start(workflow: WorkflowDefinition<I, O>, input: I, options: StartOptions = StartOptions.NONE): CompletableFuture<RunRef<O>> =
        async {
            val h = client.start(
                workflow, input, options.id, options.queue, options.priority, options.delay?.toKotlinDuration(), options.deadline, options.partitionKey,
            )
            ref(h.id, workflow.outputCodec)
        }

    /**
     * Starts a run of the workflow named [workflowName] (defined in Java or Kotlin, here or in
     * another process) with [input] encoded as JSON; its output decodes as [outputType].
     */
    @JvmOverloads
    public fun <O : Any> start(
        workflowName: String,
        input: Any,
        outputType: Class<O>,
        options: StartOptions = StartOptions.NONE,
    ): CompletableFuture<RunRef<O>> =
        start(workflowName, input, JavaCodecs.forClass(outputType), options)

    /** [start] by name with an explicit output codec (for generic outputs). */
    @JvmOverloads
    public fun <O> start(workflowName: String, input: Any, outputCodec: Codec<O>, options: StartOptions = StartOptions.NONE): CompletableFuture<RunRef<O>> =
        async {
            val inputCodec = JavaCodecs.forClass(input.javaClass)
            val h = client.start(
                workflowName, input, inputCodec, outputCodec, options.id, options.queue, options.priority,
                options.delay?.toKotlinDuration(), options.deadline, options.partitionKey,
            )
            ref(h.id, outputCodec)
        }

    /** A reference to an existing run whose output decodes as [outputType]. */
    public fun <O : Any> run(runId: String, outputType: Class<O>): RunRef<O> = ref(runId, JavaCodecs.forClass(outputType))

    /** A reference to an existing run whose output decodes with [outputCodec]. */
    public fun <O> run(runId: String, outputCodec: Codec<O>): RunRef<O> = ref(runId, outputCodec)

    /** Waits for run [runId]'s output; fails with `WorkflowFailedException` / `WorkflowCancelledException`. */
    public fun <O : Any> result(runId: String, outputType: Class<O>): CompletableFuture<O> = run(runId, outputType).result()

    /** [result] with an explicit output codec. */
    public fun <O> result(runId: String, outputCodec: Codec<O>): CompletableFuture<O> = run(runId, outputCodec).result()

    /** Sends signal [name] with [payload] to run [runId]. */
    public fun signal(runId: String, name: String, payload: Any): CompletableFuture<Void?> =
        signal(runId, name, payload, JavaCodecs.forClass(payload.javaClass))

    /** Sends signal [name] with [payload] encoded by [codec] (for generic payloads). */
    public fun <T> signal(runId: String, name: String, payload: T, codec: Codec<T>): CompletableFuture<Void?> =
        done { client.signal(runId, name, payload, codec) }

    /** The run's status, timestamps, attempts, failure and records. */
    public fun describe(runId: String): CompletableFuture<RunInfo> = async { client.describe(runId) }

    /** The run's history, to keep as JSON and check with `WorkflowReplayer` (see the Kotlin `StentClient.history`). */
    public fun history(runId: String): CompletableFuture<dev.stent.RunHistory> = async { client.history(runId) }

    /** The latest version of run [runId]'s event [key], or null; see the Kotlin `StentClient.getEvent`. */
    public fun <T : Any> getEvent(runId: String, key: String, type: Class<T>): CompletableFuture<RunEvent<T>?> =
        async { client.getEvent(runId, key, JavaCodecs.forClass(type)) }

    /**
     * The version of event [key] after [afterVersion], once published (null: the run finished
     * without it); fails with `AwaitTimeoutException` after [timeout]. See the Kotlin `StentClient.awaitEvent`.
     */
    public fun <T : Any> awaitEvent(runId: String, key: String, type: Class<T>, afterVersion: Long, timeout: Duration): CompletableFuture<RunEvent<T>?> =
        async { client.awaitEvent(runId, key, JavaCodecs.forClass(type), afterVersion, timeout.toKotlinDuration()) }

    /** Cancels the run; see the Kotlin `StentClient.cancel`. Completes with the status after the call. */
    public fun cancel(runId: String): CompletableFuture<RunStatus> = async { client.cancel(runId) }

    /**
     * Runs newest first, filtered by [status], [workflowName], [parentId] (the children of a run),
     * [queue] and [failureKind] when not null.
     */
    @JvmOverloads
    public fun list(
        status: RunStatus? = null,
        workflowName: String? = null,
        limit: Int = 100,
        offset: Int = 0,
        parentId: String? = null,
        queue: String? = null,
        failureKind: FailureKind? = null,
        createdAfter: java.time.Instant? = null,
        createdBefore: java.time.Instant? = null,
        beforeId: String? = null,
    ): CompletableFuture<List<RunInfo>> = async {
        client.list(status, workflowName, limit, offset, parentId, queue, failureKind, createdAfter, createdBefore, beforeId)
    }

    /** See the Kotlin `StentClient.stats`. */
    public fun stats(): CompletableFuture<dev.stent.StentStats> = async { client.stats() }

    /** FAILED runs not discarded, newest first, of [failureKind] when not null; see the Kotlin `StentClient.deadLetters`. */
    @JvmOverloads
    public fun deadLetters(failureKind: FailureKind? = null, limit: Int = 100, offset: Int = 0): CompletableFuture<List<RunInfo>> =
        async { client.deadLetters(failureKind, limit, offset) }

    /** Runs a FAILED run again from the step that failed it; see the Kotlin `StentClient.retry`. */
    public fun retry(runId: String): CompletableFuture<RunStatus> = async { client.retry(runId) }

    /** Marks a FAILED run handled; see the Kotlin `StentClient.discard`. */
    public fun discard(runId: String): CompletableFuture<RunStatus> = async { client.discard(runId) }

    /** Deletes a finished run; fails with `RunNotFinishedException` for one that has not finished. */
    public fun delete(runId: String): CompletableFuture<Void?> = done { client.delete(runId) }

    /** Stores a queue's limits for every worker's claims. */
    public fun setQueueLimits(limits: QueueLimits): CompletableFuture<Void?> = done { client.setQueueLimits(limits) }

    /** Removes every limit of [queue]. */
    public fun removeQueueLimits(queue: String): CompletableFuture<Void?> = done { client.removeQueueLimits(queue) }

    /** Every queue with limits or unfinished runs. */
    public fun listQueues(): CompletableFuture<List<QueueInfo>> = async { client.listQueues() }

    /**
     * Creates or replaces schedule [name]: a run of [workflow] with [input] at every tick of [cron] in
     * [zone], starting up to [catchUp] ticks missed while no worker ran; see the Kotlin `StentClient.schedule`.
     */
    @JvmOverloads
    public fun <I> schedule(
        name: String,
        cron: String,
        workflow: WorkflowDefinition<I, *>,
        input: I,
        zone: ZoneId = ZoneOffset.UTC,
        catchUp: Int = 0,
    ): CompletableFuture<ScheduleInfo> = async { client.schedule(name, cron, workflow, input, zone, catchUp) }

    /** Every schedule with its next tick. */
    public fun listSchedules(): CompletableFuture<List<ScheduleInfo>> = async { client.listSchedules() }

    /** Pauses schedule [name]. */
    public fun pauseSchedule(name: String): CompletableFuture<Void?> = done { client.pauseSchedule(name) }

    /** Resumes schedule [name] from its next tick after now. */
    public fun resumeSchedule(name: String): CompletableFuture<Void?> = done { client.resumeSchedule(name) }

    /** Deletes schedule [name]; completes with false when there was none. */
    public fun deleteSchedule(name: String): CompletableFuture<Boolean> = async { client.deleteSchedule(name) }

    private fun <O> ref(id: String, codec: Codec<O>): RunRef<O> = Ref(id, codec)

    private inner class Ref<O>(override val id: String, private val codec: Codec<O>) : RunRef<O> {
        override fun result(): CompletableFuture<O> = async { client.await(id, codec) }
        override fun result(timeout: Duration): CompletableFuture<O> = async { client.await(id, codec, timeout.toKotlinDuration()) }
        override fun describe(): CompletableFuture<RunInfo> = this@FutureClient.describe(id)
        override fun cancel(): CompletableFuture<RunStatus> = this@FutureClient.cancel(id)
        override fun toString(): String = "RunRef($id)"
    }

    public companion object {
        /** The Java client of [stent]. Cheap; keep one or make one per use. */
        @JvmStatic
        public fun of(stent: Stent): FutureClient = FutureClient(stent)
    }
}

/** A started run, from Java. */
public interface RunRef<O> {
    /** The run's id. */
    public val id: String

    /** Completes with the output when the run finishes (or exceptionally with its failure). */
    public fun result(): CompletableFuture<O>

    /** Like [result], failing with `AwaitTimeoutException` after [timeout] (the run goes on). */
    public fun result(timeout: Duration): CompletableFuture<O>

    public fun describe(): CompletableFuture<RunInfo>

    public fun cancel(): CompletableFuture<RunStatus>
}

/**
 * How to start a run: id, queue, priority, delay, deadline, partition key. Unset fields take the workflow's
 * defaults when starting a definition; when starting by name (the definition may live elsewhere)
 * they are queue `"default"`, priority 0 and no deadline.
 */
public class StartOptions private constructor(
    public val id: String?,
    public val queue: String?,
    public val priority: Int?,
    public val delay: Duration?,
    public val deadline: java.time.Instant?,
    /** The partition key a queue's per-key limit counts, or null. */
    public val partitionKey: String? = null,
) {
    /** Builds [StartOptions]. */
    public class Builder internal constructor() {
        private var id: String? = null
        private var queue: String? = null
        private var priority: Int? = null
        private var delay: Duration? = null
        private var deadline: java.time.Instant? = null
        private var partitionKey: String? = null

        /** The partition key (a customer, an account) a queue's `concurrencyPerKey` limit counts. */
        public fun partitionKey(key: String): Builder = apply { partitionKey = key }

        /** Cancels the run durably when [deadline] passes, wherever it is (overrides the workflow's timeout). */
        public fun deadline(deadline: java.time.Instant): Builder = apply { this.deadline = deadline }

        /** The run id; starting an id that exists returns the existing run. */
        public fun id(id: String): Builder = apply { this.id = id }
        public fun queue(queue: String): Builder = apply { this.queue = queue }
        public fun priority(priority: Int): Builder = apply { this.priority = priority }

        /** Postpones the first claim. */
        public fun delay(delay: Duration): Builder = apply { this.delay = delay }
        public fun build(): StartOptions = StartOptions(id, queue, priority, delay, deadline, partitionKey)
    }

    public companion object {
        /** No options: a random id and the workflow's defaults. */
        @JvmField
        public val NONE: StartOptions = StartOptions(null, null, null, null, null)

        @JvmStatic
        public fun builder(): Builder = Builder()

        /** Just an id. */
        @JvmStatic
        public fun withId(id: String): StartOptions = StartOptions(id, null, null, null, null)
    }
}
