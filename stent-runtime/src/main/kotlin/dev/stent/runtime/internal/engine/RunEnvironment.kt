package dev.stent.runtime.internal.engine

import dev.stent.WorkerConfig
import dev.stent.runtime.internal.LocalNotifier
import dev.stent.runtime.internal.StoreAccess
import kotlinx.coroutines.CoroutineDispatcher
import org.slf4j.Logger

/**
 * The two clocks the engine reads. [nowMs] is the database's clock as the worker estimates it
 * (timers, deadlines, `now()`); [nanoTime] is monotonic time (leases as this worker sees them). A
 * test drives both to make a 30-day sleep pass at once.
 */
internal interface EngineClock {
    fun nowMs(): Long

    fun nanoTime(): Long
}

/**
 * Everything a [RunExecution] needs from its surroundings: the worker builds one, and an engine
 * test builds its own (a fake store, a virtual clock, a test dispatcher), with no worker at all.
 */
internal class RunEnvironment(
    val config: WorkerConfig,
    val access: StoreAccess,
    val notifier: LocalNotifier,
    val maxPayloadBytes: Int,
    val clock: EngineClock,
    /** A new serial dispatcher for one run's coroutines (production: a one-thread view of the IO pool). */
    val runDispatcher: () -> CoroutineDispatcher,
    /** Where timers run that must fire while a run's own thread is blocked: the deadline and step timeouts. */
    val timerDispatcher: CoroutineDispatcher,
    val log: Logger,
    /** When the worker last renewed its leases (by [EngineClock.nanoTime]). */
    val lastRenewalNanos: () -> Long,
    /** Called when a run is stopped while a step body may be running, so the worker can abandon it if it does not unwind. */
    val onStopped: (RunExecution) -> Unit,
)
