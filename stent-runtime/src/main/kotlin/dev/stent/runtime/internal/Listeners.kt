package dev.stent.runtime.internal

import dev.stent.StentEvent
import dev.stent.StentListener
import dev.stent.StentTracing
import org.slf4j.LoggerFactory
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.coroutines.CoroutineContext
import kotlin.coroutines.EmptyCoroutineContext

/**
 * The listeners of one [dev.stent.Stent] or worker; a worker's also tell the Stent's ([parent]). An
 * event is built only when someone listens, and a listener that throws is logged and skipped.
 */
internal class Listeners(private val parent: Listeners? = null) {
    private val own = CopyOnWriteArrayList<StentListener>()
    private val failed: MutableSet<Any> = java.util.Collections.newSetFromMap(java.util.concurrent.ConcurrentHashMap())

    @Volatile
    private var ownTracing: StentTracing? = null

    /** The installation's tracing hook (a worker's listeners ask their Stent's), or null. */
    val tracing: StentTracing? get() = parent?.tracing ?: ownTracing

    val active: Boolean get() = own.isNotEmpty() || ownTracing != null || parent?.active == true

    /** Installs [tracing] (replacing the one before); the handle removes it, unless another replaced it meanwhile. */
    fun setTracing(tracing: StentTracing): AutoCloseable {
        synchronized(this) { ownTracing = tracing }
        return AutoCloseable { synchronized(this) { if (ownTracing === tracing) ownTracing = null } }
    }

    /** Builds and delivers the event when someone listens, and returns it (null when nobody listens). */
    inline fun <E : StentEvent> report(make: () -> E): E? = if (active) make().also(::deliver) else null

    /** The caller's trace context, as the tracing hook reads it in this thread; null without one (or when it fails or is too long). */
    fun capture(): String? {
        val hook = tracing ?: return null
        val captured = guarded(hook, "capturing a trace context") { hook.capture() } ?: return null
        if (captured.length <= StentTracing.MAX_TRACE_CONTEXT) return captured
        log.debug("stent tracing {}: a trace context of {} characters is longer than {}; not stored", hook, captured.length, StentTracing.MAX_TRACE_CONTEXT)
        return null
    }

    /** What a run's code runs in for the execution [claimed] begins; empty without a tracing hook. */
    fun runContext(claimed: StentEvent.RunClaimed?): CoroutineContext {
        val hook = tracing ?: return EmptyCoroutineContext
        return claimed?.let { guarded(hook, it) { hook.runContext(it) } } ?: EmptyCoroutineContext
    }

    /** What a step body runs in for the attempt [started] begins; empty without a tracing hook. */
    fun stepContext(started: StentEvent.StepStarted?): CoroutineContext {
        if (started == null) return EmptyCoroutineContext
        val hook = tracing ?: return EmptyCoroutineContext
        return guarded(hook, started) { hook.stepContext(started) } ?: EmptyCoroutineContext
    }

    /** Calls a listener or the tracing hook: what it throws (an AssertionError too, not a VirtualMachineError) is logged, never passed on. */
    private inline fun <T> guarded(hook: Any, doing: Any, call: () -> T): T? = try {
        call()
    } catch (e: VirtualMachineError) {
        throw e
    } catch (e: Throwable) {
        if (e is InterruptedException) Thread.currentThread().interrupt()
        failedOn(hook, doing, e)
        null
    }

    fun add(listener: StentListener): AutoCloseable {
        own += listener
        return AutoCloseable {
            own.remove(listener)
            failed.remove(listener)
        }
    }

    inline fun emit(make: () -> StentEvent) {
        if (active) deliver(make())
    }

    fun deliver(event: StentEvent) {
        for (listener in own) guarded(listener, event) { listener.onEvent(event) }
        parent?.deliver(event)
    }

    // a listener that fails on every event would flood the log: its first failure is a warning, the rest debug lines
    private fun failedOn(hook: Any, doing: Any, e: Throwable) {
        if (failed.add(hook)) {
            log.warn("stent listener {} failed on {} (later failures of this listener are logged at DEBUG)", hook, doing, e)
        } else {
            log.debug("stent listener {} failed on {}: {}", hook, doing, e.toString())
        }
    }

    private companion object {
        val log = LoggerFactory.getLogger("dev.stent.listeners")
    }
}

/** The SLF4J MDC keys Stent sets: in every engine log line about a run and inside its step bodies. */
internal const val MDC_RUN_ID = "stent.runId"
internal const val MDC_WORKFLOW = "stent.workflow"
internal const val MDC_STEP_ID = "stent.stepId"
internal const val MDC_ATTEMPT = "stent.attempt"

/**
 * The trace context a Java caller's thread had when it called the client: a future runs the call on
 * another thread, where the caller's context is gone.
 */
internal class CallerTrace(val value: String?) : kotlin.coroutines.AbstractCoroutineContextElement(Key) {
    companion object Key : CoroutineContext.Key<CallerTrace> {
        /** The [CallerTrace] of this thread when [listeners] has a tracing hook, else nothing to add. */
        fun of(listeners: Listeners): CoroutineContext = if (listeners.tracing == null) EmptyCoroutineContext else CallerTrace(listeners.capture())
    }
}
