package dev.stent.runtime.internal.engine

import dev.stent.StentException
import dev.stent.store.StepKind
import dev.stent.store.StepRecord

/** A branch of the run suspended on a durable wait until [wakeAtMs] (null: only a signal ends it). */
internal class Waiter(val wakeAtMs: Long?, val signalName: String?)

/** What the run should do once every branch waits. */
internal sealed class Quiescence {
    /** Nothing to decide: a branch is busy or none waits. */
    object Busy : Quiescence()

    /** Keep waiting in memory: the earliest wake-up is near. */
    object Stay : Quiescence()

    /** Unload until [wakeAtMs], listening for [signalNames]. */
    class Unload(val wakeAtMs: Long?, val signalNames: Set<String>) : Quiescence()
}

/**
 * The mutable state of one run execution: its records, which of them this replay has reached,
 * and what its branches are doing. Branches normally run on the run's serial dispatcher, but user
 * code may switch dispatchers, so every field is guarded by [lock].
 */
internal class RunState(records: List<StepRecord>) {
    private val lock = Any()

    // guarded by lock
    private val records = records.associateByTo(HashMap()) { it.stepId }
    private val visited = HashSet<String>()
    private val counters = HashMap<String, Int>()
    private var busy = 0
    private val waiters = HashSet<Waiter>()
    private val running = ArrayList<InStep>(1)

    /** A misuse or non-determinism error that fails the run even if the workflow code catches it. */
    @Volatile
    var fatal: StentException? = null
        private set

    fun fail(e: StentException): StentException {
        if (fatal == null) fatal = e
        return e
    }

    /** The next generated id for [prefix]: `sleep#1`, `sleep#2`, … in call order. */
    fun nextId(prefix: String): String = synchronized(lock) {
        val n = (counters[prefix] ?: 0) + 1
        counters[prefix] = n
        "$prefix#$n"
    }

    /**
     * Marks [id] reached by this replay and returns its record. Null and [kind] mismatch are the
     * caller's to judge; a second visit returns [DUPLICATE].
     */
    fun visit(id: String): Visit = synchronized(lock) {
        if (!visited.add(id)) Visit.Duplicate else Visit.First(records[id])
    }

    fun record(record: StepRecord) = synchronized(lock) { records[record.stepId] = record }

    /** Records that exist but that this replay never reached (kinds the code reaches only by call order included). */
    fun unvisited(): List<StepRecord> = synchronized(lock) { records.values.filter { it.stepId !in visited } }

    fun stepStarted(step: InStep) = synchronized(lock) { running += step }

    fun stepEnded(step: InStep) = synchronized(lock) { running -= step }

    /** The step bodies running now, for the log of a run abandoned with a body that ignores interruption. */
    fun runningSteps(): List<InStep> = synchronized(lock) { running.toList() }

    fun enterBusy() = synchronized(lock) { busy++ }

    /** Returns true when the run may have become quiescent. */
    fun exitBusy(): Boolean = synchronized(lock) { --busy == 0 && waiters.isNotEmpty() }

    fun addWaiter(w: Waiter): Boolean = synchronized(lock) { waiters.add(w); busy == 0 }

    /** Returns true when other branches still wait (the run may become quiescent once this one moves on). */
    fun removeWaiter(w: Waiter): Boolean = synchronized(lock) { waiters.remove(w); waiters.isNotEmpty() }

    /** Decides, when no branch is busy, whether to unload; see [Quiescence]. */
    fun quiescence(nowMs: Long, thresholdMs: Long): Quiescence = synchronized(lock) {
        if (busy != 0 || waiters.isEmpty()) return Quiescence.Busy
        val earliest = waiters.mapNotNull { it.wakeAtMs }.minOrNull()
        if (earliest != null && earliest - nowMs <= thresholdMs) return Quiescence.Stay
        Quiescence.Unload(earliest, waiters.mapNotNullTo(HashSet()) { it.signalName })
    }

    sealed class Visit {
        object Duplicate : Visit()
        class First(val record: StepRecord?) : Visit()
    }

    companion object {
        fun kindName(kind: StepKind): String = kind.name.lowercase()
    }
}
