@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent

import kotlin.time.Duration

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
    /** Default run timeout: a run not finished this long after its start is cancelled; null for none. */
    @get:JvmSynthetic public val timeout: Duration?,
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

        /**
         * Run timeout: a run still unfinished this long after it was started is cancelled
         * durably, wherever it is (running, waiting or not yet claimed by a worker that serves
         * it); `start(deadline = …)` overrides it per run. Null (the default) or
         * [Duration.INFINITE] for none.
         */
        public var timeout: Duration? = null
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
            val timeout = o.timeout?.takeUnless { it.isInfinite() }
            if (timeout != null && !timeout.isPositive()) {
                throw InvalidArgumentException("workflow '$name': timeout must be positive (or null for none), was $timeout")
            }
            return WorkflowDefinition(name, inputCodec, outputCodec, o.retryPolicy, o.queue, o.priority, timeout, body)
        }

        /**
         * Checks a workflow, queue, run, step, signal or worker name: 1 to 200 characters, not blank,
         * no leading or trailing spaces, no control characters (PostgreSQL cannot store NUL).
         */
        @InternalStentApi
        @JvmSynthetic
        public fun validateName(what: String, name: String, runId: String? = null, workflowName: String? = null) {
            val problem = when {
                name.isBlank() -> "it is blank"
                name.length > MAX_NAME -> "it is ${name.length} characters long"
                name != name.trim() -> "it has leading or trailing spaces"
                name.any { it.isISOControl() } -> "it contains a control character (code ${name.first { it.isISOControl() }.code})"
                else -> return
            }
            val where = when {
                workflowName != null && runId != null -> " in workflow '$workflowName' (run '$runId')"
                runId != null -> " (run '$runId')"
                else -> ""
            }
            throw InvalidArgumentException(
                "invalid $what '${printable(name)}'$where: $problem; use 1 to $MAX_NAME printable characters " +
                    "without leading or trailing spaces",
                runId, workflowName, if (what.endsWith(" id") && what != "run id") name else null,
            )
        }

        private const val MAX_NAME = 200

        /** [name] shortened and with control characters escaped, for messages. */
        private fun printable(name: String): String = buildString {
            for (c in name.take(60)) if (c.isISOControl()) append("\\u%04x".format(c.code)) else append(c)
            if (name.length > 60) append("…")
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
