package dev.stent

/**
 * A workflow: a name, the codecs of its input and output, its defaults, and its body.
 *
 * Definitions are plain values: define them once (top level or in a DI module), register them
 * with a worker, and start runs of them with a client. The [name] is what the database stores; a
 * worker executes only runs whose name it registered.
 */
public class WorkflowDefinition<I, O> private constructor(
    /** The stored name; unique among the workflows a worker registers. */
    public val name: String,
    /** Codec of the input. */
    public val inputCodec: Codec<I>,
    /** Codec of the output. */
    public val outputCodec: Codec<O>,
    /** Default retry policy of the steps. */
    public val retryPolicy: RetryPolicy,
    /** Default queue of new runs. */
    public val queue: String,
    /** Default priority of new runs; higher runs are claimed first. */
    public val priority: Int,
    body: suspend WorkflowScope.(I) -> O,
) {
    /** The workflow code. */
    @InternalStentApi
    @get:JvmSynthetic
    public val body: suspend WorkflowScope.(I) -> O = body

    override fun toString(): String = "workflow '$name'"

    /** Options of a [WorkflowDefinition]. */
    @StentDsl
    public class Options internal constructor() {
        /** Default retry policy of the steps (default [RetryPolicy.DEFAULT]). */
        public var retryPolicy: RetryPolicy = RetryPolicy.DEFAULT

        /** Default queue of new runs (default `"default"`). */
        public var queue: String = DEFAULT_QUEUE

        /** Default priority of new runs (default 0; higher first). */
        public var priority: Int = 0
    }

    public companion object {
        /** The queue runs go to unless told otherwise. */
        public const val DEFAULT_QUEUE: String = "default"

        /** Builds a definition from explicit codecs; Kotlin code usually calls [workflow] (Java: `Workflows.define`). */
        @JvmSynthetic
        public fun <I, O> of(
            name: String,
            inputCodec: Codec<I>,
            outputCodec: Codec<O>,
            options: Options.() -> Unit = {},
            body: suspend WorkflowScope.(I) -> O,
        ): WorkflowDefinition<I, O> {
            validateName("workflow name", name)
            val o = Options().apply(options)
            validateName("queue", o.queue)
            return WorkflowDefinition(name, inputCodec, outputCodec, o.retryPolicy, o.queue, o.priority, body)
        }

        /** Checks a workflow, queue, step or signal name: 1 to 200 characters, not blank. */
        @InternalStentApi
        @JvmSynthetic
        public fun validateName(what: String, name: String) {
            require(name.isNotBlank() && name.length <= 200 && name == name.trim()) {
                "invalid $what '$name': it must be 1 to 200 characters, not blank, without leading or trailing spaces"
            }
        }
    }
}

/**
 * Defines a workflow whose input [I] and output [O] use kotlinx-serialization JSON.
 *
 * ```
 * val order = workflow<OrderRequest, String>("order") { req ->
 *     val auth = step("authorize") { payments.authorize(req) }
 *     sleep(10.minutes)
 *     step("ship") { shipping.ship(req, auth) }
 * }
 * ```
 */
@JvmSynthetic
public inline fun <reified I, reified O> workflow(
    name: String,
    noinline options: WorkflowDefinition.Options.() -> Unit = {},
    noinline body: suspend WorkflowScope.(I) -> O,
): WorkflowDefinition<I, O> = WorkflowDefinition.of(name, codecOf<I>(), codecOf<O>(), options, body)
