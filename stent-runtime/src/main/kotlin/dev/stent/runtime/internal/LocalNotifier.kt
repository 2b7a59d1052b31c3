package dev.stent.runtime.internal

import dev.stent.InternalStentApi
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.withTimeoutOrNull
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicReference
import kotlin.time.Duration

/**
 * In-process wake-ups between the clients and workers of one JVM: new work, a finished run, a
 * signal, a cancel request. Wake-ups are hints; every waiter re-reads the database, and polls
 * with back-off for what happens in other processes.
 */
internal class LocalNotifier : dev.stent.store.WakeUpSink {
    /** New claimable work (a started run, a signal, a released lease). */
    val workAvailable: WakeUp = WakeUp()

    /** A virtual clock moved (the test kit): schedules may have come due. */
    val clockMoved: WakeUp = WakeUp()

    // Keyed wake-ups; an entry lives while someone may wait on it (removed on finish).
    private val finished = ConcurrentHashMap<String, WakeUp>()
    private val signals = ConcurrentHashMap<String, WakeUp>()
    private val cancels = ConcurrentHashMap<String, (String) -> Unit>()

    fun finishedFor(runId: String): WakeUp = finished.computeIfAbsent(runId) { WakeUp() }

    /** Drops the wake-up of [runId] once an awaiter is done with it (another awaiter falls back to polling). */
    fun forgetFinished(runId: String) {
        finished.remove(runId)
    }
    fun signalFor(runId: String): WakeUp = signals.computeIfAbsent(runId) { WakeUp() }

    override fun work(): Unit = workAvailable.fire()
    override fun finished(runId: String): Unit = runFinished(runId)
    override fun signal(runId: String): Unit = signalSent(runId)
    override fun cancel(runId: String): Unit = cancelRequested(runId)
    override fun reconnected() {
        workAvailable.fire()
        finished.values.forEach { it.fire() }
        signals.values.forEach { it.fire() }
    }

    fun runFinished(runId: String) {
        finished.remove(runId)?.fire()
        signals.remove(runId)
    }

    fun signalSent(runId: String) {
        signals[runId]?.fire()
        workAvailable.fire()
    }

    /** Registers the worker that executes [runId] in this JVM, to hear cancel requests at once. */
    fun onCancel(runId: String, handler: (String) -> Unit) { cancels[runId] = handler }

    /** Removes [handler] if it is still the one registered for [runId] (a newer execution's handler stays). */
    fun removeCancel(runId: String, handler: (String) -> Unit) { cancels.remove(runId, handler) }
    fun cancelRequested(runId: String) { cancels[runId]?.invoke(runId) }
}

/**
 * A reusable wake-up: [arm] before checking the condition, then [awaitArmed]; a [fire] between
 * the two is not lost.
 */
internal class WakeUp {
    private val current = AtomicReference(CompletableDeferred<Unit>())

    fun arm(): CompletableDeferred<Unit> = current.get()

    fun fire() {
        current.getAndSet(CompletableDeferred()).complete(Unit)
    }

    /** Waits for a fire after [armed] was taken, at most [timeout]. True if fired. */
    suspend fun awaitArmed(armed: CompletableDeferred<Unit>, timeout: Duration): Boolean =
        withTimeoutOrNull(timeout) { armed.await() } != null
}
