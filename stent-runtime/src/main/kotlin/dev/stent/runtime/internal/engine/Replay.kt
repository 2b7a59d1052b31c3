package dev.stent.runtime.internal.engine

import dev.stent.DuplicateStepIdException
import dev.stent.NonDeterminismException
import dev.stent.RecordKind
import dev.stent.StentException
import dev.stent.WorkflowMisuseException
import dev.stent.store.StoredRecord

/**
 * Replay by memoization: matches the calls a run's workflow code makes, in this execution, against
 * the records loaded when the run was claimed. Every rule of replay lives here:
 *
 * - each call is keyed by its id (given, or generated per prefix in call order: `sleep#1`, …) and
 *   answered from its record when there is one ([visit]);
 * - a second call with the same id is a [DuplicateStepIdException];
 * - a record of another kind than the call is a [NonDeterminismException];
 * - a record the code never reaches before the run finishes is a [NonDeterminismException] too
 *   ([verdict]);
 * - a Stent call made inside a step body is a [WorkflowMisuseException] ([misuse]).
 *
 * Each of these errors is fatal: it is kept, and fails the run even if the workflow code catches it.
 * Branches may run on other threads (user code can switch dispatchers), so state is guarded by [lock].
 */
internal class Replay(private val runId: String, private val workflowName: String, records: List<StoredRecord>) {
    private val lock = Any()

    // guarded by lock
    // in the order loaded (oldest first), so the records a replay never reached are told in that order
    private val records = records.associateByTo(LinkedHashMap()) { it.stepId }
    private val visited = HashSet<String>()
    private val counters = HashMap<String, Int>()

    /** The first fatal error of this replay, if any. */
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

    /** Reaches [id] as a call of [kind]: its record, or null when it has none yet. A duplicate or another kind is fatal. */
    fun visit(id: String, kind: RecordKind): StoredRecord? {
        val record = synchronized(lock) {
            if (!visited.add(id)) throw fail(DuplicateStepIdException(runId, workflowName, id))
            records[id]
        }
        if (record != null && record.kind != kind) {
            throw fail(NonDeterminismException(runId, workflowName, id, "a ${kindName(record.kind)} '$id'", "calls ${kindName(kind)} '$id'"))
        }
        return record
    }

    /** Keeps [record], just written, as the answer to its call. */
    fun record(record: StoredRecord) = synchronized(lock) { records[record.stepId] = record }

    /** [record] for a record this execution reached without a call of its own (a map's child outcomes). */
    fun recordReached(record: StoredRecord) = synchronized(lock) {
        records[record.stepId] = record
        visited += record.stepId
    }

    /** The record [id] holds now, without reaching it. */
    fun peek(id: String): StoredRecord? = synchronized(lock) { records[id] }

    /** A Stent call ([call], with its id if it has one) made inside the body of step [outerStepId]: fatal misuse. */
    fun misuse(call: String, id: String?, outerStepId: String): StentException {
        val what = if (id != null) "$call('$id')" else "$call()"
        return fail(
            WorkflowMisuseException(
                runId, workflowName, id ?: outerStepId,
                "$what was called inside step '$outerStepId' in workflow '$workflowName' (run '$runId'): " +
                    "Stent calls (steps, sleeps, signals, now, random) cannot run inside a step body; " +
                    "call them from the workflow body, or make the inner work plain code inside the step",
            ),
        )
    }

    /**
     * Once the workflow code returned: the fatal error of this replay, or a record it never reached, or null.
     * A version marker the code no longer reaches is not one: removing a `version` call whose old path is gone is safe.
     */
    fun verdict(): StentException? = fatal ?: unreached().firstOrNull()?.let {
        NonDeterminismException(runId, workflowName, it.stepId, "a ${kindName(it.kind)} '${it.stepId}'", "finished without reaching it")
    }

    /** The records (version markers aside) this execution has not reached yet, oldest first: the run went past here before. */
    fun unreached(): List<StoredRecord> = synchronized(lock) {
        records.values.filter { it.stepId !in visited && it.kind != RecordKind.VERSION }.sortedBy { it.createdAt } // stable: load order within a millisecond
    }

    private companion object {
        fun kindName(kind: RecordKind): String = kind.name.lowercase()
    }
}
