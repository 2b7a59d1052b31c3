package dev.stent.java

import dev.stent.Codec
import dev.stent.InternalStentApi
import dev.stent.RetryPolicy
import dev.stent.WorkflowDefinition
import dev.stent.runtime.internal.BlockingDispatchers
import dev.stent.runtime.internal.java.JavaWorkflowContext
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.runInterruptible
import kotlin.time.toKotlinDuration

/**
 * Defines workflows in Java:
 * ```java
 * WorkflowDefinition<OrderRequest, Receipt> order = Workflows.define("order", OrderRequest.class, Receipt.class, (ctx, req) -> {
 *     Auth auth = ctx.step("authorize", Auth.class, () -> payments.authorize(req));
 *     ctx.sleep(Duration.ofMinutes(10));
 *     return ctx.step("ship", Receipt.class, () -> shipping.ship(req, auth));
 * });
 * ```
 * The result is the same [WorkflowDefinition] Kotlin's `workflow { }` makes: one engine runs both.
 * Inputs and outputs use [JavaCodecs.forClass].
 */
public object Workflows {
    /** Defines a workflow with default options. */
    @JvmStatic
    public fun <I : Any, O : Any> define(name: String, inputType: Class<I>, outputType: Class<O>, body: JavaWorkflow<I, O>): WorkflowDefinition<I, O> =
        define(name, inputType, outputType, WorkflowOptions.DEFAULT, body)

    /** Defines a workflow with [options] (queue, priority, default retry policy). */
    @OptIn(InternalStentApi::class)
    @JvmStatic
    public fun <I : Any, O : Any> define(
        name: String,
        inputType: Class<I>,
        outputType: Class<O>,
        options: WorkflowOptions,
        body: JavaWorkflow<I, O>,
    ): WorkflowDefinition<I, O> = define(name, JavaCodecs.forClass(inputType), JavaCodecs.forClass(outputType), options, body)

    /**
     * Defines a workflow whose input and output go through explicit codecs: for generic types
     * (`JavaCodecs.jackson(new TypeReference<List<Item>>() {})`) or codecs of your own.
     */
    @JvmStatic
    public fun <I, O> define(name: String, inputCodec: Codec<I>, outputCodec: Codec<O>, body: JavaWorkflow<I, O>): WorkflowDefinition<I, O> =
        define(name, inputCodec, outputCodec, WorkflowOptions.DEFAULT, body)

    /** [define] with explicit codecs and [options]. */
    @OptIn(InternalStentApi::class)
    @JvmStatic
    public fun <I, O> define(
        name: String,
        inputCodec: Codec<I>,
        outputCodec: Codec<O>,
        options: WorkflowOptions,
        body: JavaWorkflow<I, O>,
    ): WorkflowDefinition<I, O> = WorkflowDefinition.of(
        name, inputCodec, outputCodec,
        {
            retryPolicy = options.retryPolicy
            queue = options.queue
            priority = options.priority
            timeout = options.timeout?.toKotlinDuration()
        },
    ) { input ->
        val ctx = JavaWorkflowContext(this, currentCoroutineContext())
        runInterruptible(BlockingDispatchers.bodies) { body.run(ctx, input) }
    }
}

/** Options of a Java-defined workflow; build with [builder]. */
public class WorkflowOptions private constructor(
    public val queue: String,
    public val priority: Int,
    public val retryPolicy: RetryPolicy,
    /** The run timeout (null: none); see [Builder.timeout]. */
    public val timeout: java.time.Duration?,
) {
    /** Builds [WorkflowOptions]. */
    public class Builder internal constructor() {
        private var queue = WorkflowDefinition.DEFAULT_QUEUE
        private var priority = 0
        private var retryPolicy = RetryPolicy.DEFAULT
        private var timeout: java.time.Duration? = null

        /**
         * Run timeout: a run still unfinished this long after it was started is cancelled durably,
         * wherever it is; `StartOptions.deadline` overrides it per run.
         */
        public fun timeout(timeout: java.time.Duration): Builder = apply { this.timeout = timeout }

        /** Default queue of new runs. */
        public fun queue(queue: String): Builder = apply { this.queue = queue }

        /** Default priority of new runs (higher first). */
        public fun priority(priority: Int): Builder = apply { this.priority = priority }

        /** Default retry policy of the steps. */
        public fun retryPolicy(retryPolicy: RetryPolicy): Builder = apply { this.retryPolicy = retryPolicy }

        public fun build(): WorkflowOptions = WorkflowOptions(queue, priority, retryPolicy, timeout)
    }

    public companion object {
        /** Queue "default", priority 0, [RetryPolicy.DEFAULT]. */
        @JvmField
        public val DEFAULT: WorkflowOptions = Builder().build()

        @JvmStatic
        public fun builder(): Builder = Builder()
    }
}
