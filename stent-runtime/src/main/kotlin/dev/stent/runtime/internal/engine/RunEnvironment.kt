package dev.stent.runtime.internal.engine

import dev.stent.WorkerConfig
import dev.stent.runtime.internal.LocalNotifier
import dev.stent.runtime.internal.StoreAccess
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.sync.Semaphore
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
 * The worker's execution slots ([WorkerConfig.concurrency]): a run holds one while it executes
 * code, gives it back while every branch waits in memory ([parked]), and takes one again to go on.
 */
internal interface RunSlots {
    /** Suspends until a slot is free; waiting runs that resume come first (FIFO). */
    suspend fun acquire()

    fun release()

    /** [run] waits in memory without a slot; the worker may unload it to bound memory. */
    fun parked(run: RunExecution)

    /** [run] no longer waits in memory (it goes on, or ended). */
    fun unparked(run: RunExecution)
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
    /** Where step bodies run: off the run's serial thread, on threads made for blocking, so branches overlap. */
    val stepDispatcher: CoroutineDispatcher,
    /** Step bodies executing at once over every run of the worker ([WorkerConfig.maxParallelSteps]). */
    val stepPermits: Semaphore,
    val slots: RunSlots,
    val log: Logger,
    /** When the worker last renewed its leases (by [EngineClock.nanoTime]). */
    val lastRenewalNanos: () -> Long,
    /** Called when a run is stopped while a step body may be running, so the worker can abandon it if it does not unwind. */
    val onStopped: (RunExecution) -> Unit,
    /** Who hears this worker's events (and the Stent's listeners through it). */
    val listeners: dev.stent.runtime.internal.Listeners = dev.stent.runtime.internal.Listeners(),
    /** The worker's id, for events. */
    val workerId: String = config.workerId,
    /** Set when a [dev.stent.WorkflowReplayer] checks code against a history: no call does new work, none writes. */
    val replayOnly: ReplayFrontier? = null,
)
