package dev.stent

import kotlin.coroutines.CoroutineContext

/**
 * Carries a trace through runs, for a tracing module (`stent-opentelemetry` is one): install it with
 * `stent.setTracing(…)`. Stent stores what [capture] returns with each run a caller starts and each
 * signal it sends, and hands it back to whichever worker executes the run, in another process or after a
 * crash too ([StentEvent.RunClaimed.traceContext], [StentEvent.SignalReceived.traceContext]).
 * Called on the engine's threads like a [StentListener]; a hook that throws is logged and ignored.
 */
public interface StentTracing {
    /**
     * The caller's trace context as text (for OpenTelemetry a W3C `traceparent`), read in the caller's
     * thread when it starts a run, sends a signal, or when a run starts a child; null for none. At most
     * [MAX_TRACE_CONTEXT] characters are stored; a longer one is dropped.
     */
    public fun capture(): String?

    /** What the run's own code runs in for the execution [claimed] begins (say, its span made current). */
    public fun runContext(claimed: StentEvent.RunClaimed): CoroutineContext

    /** What the body of the step attempt [started] runs in (say, its span made current). */
    public fun stepContext(started: StentEvent.StepStarted): CoroutineContext

    public companion object {
        /** The longest trace context stored. */
        public const val MAX_TRACE_CONTEXT: Int = 1024
    }
}
