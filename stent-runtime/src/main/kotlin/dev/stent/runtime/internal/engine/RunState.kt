package dev.stent.runtime.internal.engine

/** A branch of the run suspended on a durable wait until [wakeAtMs] (null: only a signal ends it). */
internal class Waiter(val wakeAtMs: Long?, val signalName: String?)

/** What the run should do once every branch waits. */
internal sealed class Quiescence {
    /** Nothing to decide: a branch is busy or none waits. */
    object Busy : Quiescence()

    /** Keep waiting in memory until [wakeAtMs] (near), for [signalNames] too, without an execution slot. */
    class Stay(val wakeAtMs: Long, val signalNames: Set<String>) : Quiescence()

    /** Unload until [wakeAtMs], listening for [signalNames]. */
    class Unload(val wakeAtMs: Long?, val signalNames: Set<String>) : Quiescence()
}

/**
 * What the branches of one run execution are doing, for quiescence: how many are busy (executing
 * or in a store call), which wait durably and until when, and which step bodies run. [Replay]
 * holds the records. Branches normally run on the run's serial dispatcher, but user code may
 * switch dispatchers, so every field is guarded by [lock].
 */
internal class RunState {
    private val lock = Any()

    // guarded by lock
    private var busy = 0
    private val waiters = HashSet<Waiter>()
    private val running = ArrayList<InStep>(1)

    fun stepStarted(step: InStep) = synchronized(lock) { running += step }

    fun stepEnded(step: InStep) = synchronized(lock) { running -= step }

    /** The step bodies running now, for the log of a run abandoned with a body that ignores interruption. */
    fun runningSteps(): List<InStep> = synchronized(lock) { running.toList() }

    fun enterBusy() = synchronized(lock) { busy++ }

    /** True when one branch alone is busy (the caller's) and none waits durably: nothing else of the run is due to resume. */
    fun aloneBusy(): Boolean = synchronized(lock) { busy <= 1 && waiters.isEmpty() && running.size <= 1 }

    /** Returns true when the run may have become quiescent. */
    fun exitBusy(): Boolean = synchronized(lock) { --busy == 0 && waiters.isNotEmpty() }

    fun addWaiter(w: Waiter): Boolean = synchronized(lock) { waiters.add(w); busy == 0 }

    /** Returns true when other branches still wait (the run may become quiescent once this one moves on). */
    fun removeWaiter(w: Waiter): Boolean = synchronized(lock) { waiters.remove(w); waiters.isNotEmpty() }

    /** Decides, when no branch is busy, whether to unload; see [Quiescence]. */
    fun quiescence(nowMs: Long, thresholdMs: Long): Quiescence = synchronized(lock) {
        if (busy != 0 || waiters.isEmpty()) return Quiescence.Busy
        val earliest = waiters.mapNotNull { it.wakeAtMs }.minOrNull()
        val signals = waiters.mapNotNullTo(HashSet()) { it.signalName }
        if (earliest != null && earliest - nowMs <= thresholdMs) return Quiescence.Stay(earliest, signals)
        Quiescence.Unload(earliest, signals)
    }
}
