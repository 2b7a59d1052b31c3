package dev.stent.opentelemetry

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentEvent
import dev.stent.StentListener
import dev.stent.StentTracing
import io.opentelemetry.api.OpenTelemetry
import io.opentelemetry.api.common.AttributeKey
import io.opentelemetry.api.common.Attributes
import io.opentelemetry.api.trace.Span
import io.opentelemetry.api.trace.SpanKind
import io.opentelemetry.api.trace.StatusCode
import io.opentelemetry.api.trace.Tracer
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator
import io.opentelemetry.context.Context
import io.opentelemetry.context.Scope
import io.opentelemetry.context.propagation.TextMapGetter
import kotlinx.coroutines.ThreadContextElement
import java.util.concurrent.ConcurrentHashMap
import kotlin.coroutines.AbstractCoroutineContextElement
import kotlin.coroutines.CoroutineContext

/**
 * Stent's runs as OpenTelemetry traces, through the OpenTelemetry API only (the SDK and its exporters
 * are the application's): a span per run execution (`run <workflow>`, kind CONSUMER) and per step
 * attempt (`step <step id>`), current while the run's code and the step's body run, so spans your
 * code makes nest under them.
 *
 * The caller's context when it starts a run is stored with the run as a W3C `traceparent` (and
 * `tracestate`), and every execution of the run (by any worker, in any process, after a crash too)
 * is a child of it: one trace from the request that started the run to its last step. A child run's
 * executions are children of the parent's execution that started it; a signal links the execution
 * that takes it to the span that sent it. Bind it with [bindTo].
 */
public class OpenTelemetryTracing(openTelemetry: OpenTelemetry) : StentTracing {
    private val tracer: Tracer = openTelemetry.getTracer(INSTRUMENTATION_SCOPE)

    /** The executions this process has open, by run id and execution (a run lost by a frozen worker and taken over is two), with their open step attempts. */
    private val open = ConcurrentHashMap<Execution, OpenRun>()

    private data class Execution(val runId: String, val execution: Long)

    private val StentEvent.RunEvent.key get() = Execution(runId, execution)

    private class OpenRun(val span: Span?) {
        val steps = ConcurrentHashMap<String, Span>()
    }

    /**
     * Traces [stent]'s runs: installs this as its tracing hook and listens to its events. Closing the
     * handle stops both and ends the spans still open.
     */
    public fun bindTo(stent: Stent): AutoCloseable {
        val hook = stent.setTracing(this)
        val listening = stent.addListener(listener)
        return AutoCloseable {
            listening.close()
            hook.close()
            open.keys.forEach { end(it, "unbound", null) }
        }
    }

    override fun capture(): String? {
        val context = Context.current()
        if (!Span.fromContext(context).spanContext.isValid) return null
        val carrier = HashMap<String, String>(2)
        W3C.inject(context, carrier) { map, key, value -> map?.put(key, value) }
        val parent = carrier[TRACEPARENT] ?: return null
        val state = carrier[TRACESTATE]
        return if (state.isNullOrEmpty()) parent else "$parent\n$state"
    }

    override fun runContext(claimed: StentEvent.RunClaimed): CoroutineContext {
        val parent = restore(claimed.traceContext) ?: Context.root()
        val span = tracer.spanBuilder("run ${claimed.workflowName}")
            .setParent(parent)
            .setSpanKind(SpanKind.CONSUMER)
            .setAttribute(RUN_ID, claimed.runId)
            .setAttribute(WORKFLOW, claimed.workflowName)
            .setAttribute(QUEUE, claimed.queue ?: "")
            .setAttribute(WORKER_ID, claimed.workerId)
            .setAttribute(RESUMED, claimed.resumed)
            .setAttribute(CLAIM_COUNT, claimed.claimCount.toLong())
            .also { b -> claimed.parentId?.let { b.setAttribute(PARENT_RUN_ID, it) } }
            .startSpan()
        open.put(claimed.key, OpenRun(span))?.let { previous -> endRun(previous, "superseded", null) }
        return CurrentContext(parent.with(span))
    }

    override fun stepContext(started: StentEvent.StepStarted): CoroutineContext {
        val run = open.computeIfAbsent(started.key) { OpenRun(null) } // bound after the claim: the step still gets a span
        // called in the run's code, where its execution's span (or a span the workflow made around the step) is current
        val parent = Context.current()
        val span = tracer.spanBuilder("step ${started.stepId}")
            .setParent(parent)
            .setAttribute(RUN_ID, started.runId)
            .setAttribute(WORKFLOW, started.workflowName)
            .setAttribute(STEP_ID, started.stepId)
            .setAttribute(ATTEMPT, started.attempt.toLong())
            .startSpan()
        run.steps.put(stepKey(started.stepId, started.attempt), span)?.end()
        return CurrentContext(parent.with(span))
    }

    /** Ends spans as runs and steps end; public so an application can register it itself ([bindTo] does). */
    public val listener: StentListener = StentListener { e ->
        when (e) {
            is StentEvent.StepCompleted -> open[e.key]?.steps?.remove(stepKey(e.stepId, e.attempt))?.end()
            is StentEvent.StepFailed -> open[e.key]?.steps?.remove(stepKey(e.stepId, e.attempt))?.let { span ->
                span.setAttribute(RETRYING, e.isRetrying)
                span.addEvent(
                    "exception",
                    Attributes.of(AttributeKey.stringKey("exception.type"), e.failure.type, AttributeKey.stringKey("exception.message"), e.failure.message),
                )
                span.setStatus(StatusCode.ERROR, e.failure.message)
                span.end()
            }
            is StentEvent.SignalReceived -> open[e.key]?.span?.let { span ->
                span.addEvent("signal received", Attributes.of(SIGNAL, e.signalName))
                // restore gives only a valid context
                restore(e.traceContext)?.let { sender -> span.addLink(Span.fromContext(sender).spanContext, Attributes.of(SIGNAL, e.signalName)) }
            }
            is StentEvent.RunWaiting -> if (e.unloaded) {
                end(e.key, "unloaded", null)
            } else {
                open[e.key]?.span?.addEvent("waiting", Attributes.of(SIGNAL, e.signals.joinToString(",")))
            }
            is StentEvent.RunReleased -> end(e.key, "released", null)
            is StentEvent.LeaseLost -> end(e.key, "lease lost", null)
            is StentEvent.RunFinished -> end(e.key, e.status.name.lowercase(), e.failure?.message)
            is StentEvent.RunStarted, is StentEvent.RunClaimed, is StentEvent.StepStarted, is StentEvent.ClaimBatch -> Unit
        }
    }

    private fun end(execution: Execution, outcome: String, error: String?) {
        open.remove(execution)?.let { endRun(it, outcome, error) }
    }

    /** How many executions this process has open (for tests: every execution's span ends). */
    internal val openExecutions: Int get() = open.size

    private fun endRun(run: OpenRun, outcome: String, error: String?) {
        // steps a stop cut off end with their run
        run.steps.values.forEach { it.setAttribute(OUTCOME, "stopped").end() }
        run.span?.let { span ->
            span.setAttribute(OUTCOME, outcome)
            if (outcome == FAILED) span.setStatus(StatusCode.ERROR, error ?: FAILED)
            span.end()
        }
    }

    /** The span context stored as [text] (see [capture]), as a parent; null when there is none or it does not parse. */
    private fun restore(text: String?): Context? {
        if (text.isNullOrEmpty()) return null
        val carrier = mapOf(TRACEPARENT to text.substringBefore('\n'), TRACESTATE to text.substringAfter('\n', ""))
        val context = W3C.extract(Context.root(), carrier, MapGetter)
        return context.takeIf { Span.fromContext(it).spanContext.isValid }
    }

    private object MapGetter : TextMapGetter<Map<String, String>> {
        override fun keys(carrier: Map<String, String>): Iterable<String> = carrier.keys

        override fun get(carrier: Map<String, String>?, key: String): String? = carrier?.get(key)?.takeIf { it.isNotEmpty() }
    }

    /** Makes [context] current on whichever thread runs the coroutine, for as long as it runs there. */
    private class CurrentContext(private val context: Context) : AbstractCoroutineContextElement(Key), ThreadContextElement<Scope> {
        companion object Key : CoroutineContext.Key<CurrentContext>

        override fun updateThreadContext(context: CoroutineContext): Scope = this.context.makeCurrent()

        override fun restoreThreadContext(context: CoroutineContext, oldState: Scope) = oldState.close()
    }

    private companion object {
        const val INSTRUMENTATION_SCOPE = "dev.stent"
        val FAILED = RunStatus.FAILED.name.lowercase()
        const val TRACEPARENT = "traceparent"
        const val TRACESTATE = "tracestate"
        val W3C: W3CTraceContextPropagator = W3CTraceContextPropagator.getInstance()
        val RUN_ID: AttributeKey<String> = AttributeKey.stringKey("stent.run.id")
        val PARENT_RUN_ID: AttributeKey<String> = AttributeKey.stringKey("stent.run.parent_id")
        val WORKFLOW: AttributeKey<String> = AttributeKey.stringKey("stent.workflow")
        val QUEUE: AttributeKey<String> = AttributeKey.stringKey("stent.queue")
        val WORKER_ID: AttributeKey<String> = AttributeKey.stringKey("stent.worker.id")
        val RESUMED: AttributeKey<Boolean> = AttributeKey.booleanKey("stent.run.resumed")
        val CLAIM_COUNT: AttributeKey<Long> = AttributeKey.longKey("stent.run.claim_count")
        val OUTCOME: AttributeKey<String> = AttributeKey.stringKey("stent.outcome")
        val STEP_ID: AttributeKey<String> = AttributeKey.stringKey("stent.step.id")
        val ATTEMPT: AttributeKey<Long> = AttributeKey.longKey("stent.step.attempt")
        val RETRYING: AttributeKey<Boolean> = AttributeKey.booleanKey("stent.step.retrying")
        val SIGNAL: AttributeKey<String> = AttributeKey.stringKey("stent.signal")

        fun stepKey(stepId: String, attempt: Int) = "$stepId#$attempt"
    }
}
