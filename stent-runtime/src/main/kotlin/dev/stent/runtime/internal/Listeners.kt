package dev.stent.runtime.internal

import dev.stent.StentEvent
import dev.stent.StentListener
import org.slf4j.LoggerFactory
import java.util.concurrent.CopyOnWriteArrayList

/**
 * The listeners of one [dev.stent.Stent] or worker; a worker's also tell the Stent's ([parent]). An
 * event is built only when someone listens, and a listener that throws is logged and skipped.
 */
internal class Listeners(private val parent: Listeners? = null) {
    private val own = CopyOnWriteArrayList<StentListener>()

    val active: Boolean get() = own.isNotEmpty() || parent?.active == true

    fun add(listener: StentListener): AutoCloseable {
        own += listener
        return AutoCloseable { own.remove(listener) }
    }

    inline fun emit(make: () -> StentEvent) {
        if (active) deliver(make())
    }

    fun deliver(event: StentEvent) {
        for (listener in own) {
            try {
                listener.onEvent(event)
            } catch (e: VirtualMachineError) {
                throw e
            } catch (e: Throwable) {
                // an AssertionError or any other Error of a listener must not fail the run either
                if (e is InterruptedException) Thread.currentThread().interrupt()
                log.warn("stent listener {} failed on {}: {}", listener, event, e.toString())
            }
        }
        parent?.deliver(event)
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
