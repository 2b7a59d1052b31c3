package dev.stent.exposed.internal

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.store.CheckpointWrite
import dev.stent.store.EventRecords
import dev.stent.store.LeaseLostException
import dev.stent.store.StoredRecord
import dev.stent.store.WriteOutcome
import org.jetbrains.exposed.v1.core.SortOrder
import org.jetbrains.exposed.v1.core.eq
import org.jetbrains.exposed.v1.jdbc.selectAll
import org.jetbrains.exposed.v1.jdbc.transactions.transaction

// A run's records: checkpoints (one or a group), consuming a signal into a record, reading them.

// One statement, fenced inside itself: no transaction round trips around it.
internal fun StoreContext.checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome = autocommit {
    if (upsertRecord(runId, fencingToken, record) == 1) WriteOutcome.OK
    else if (holdsLease(runId, fencingToken)) WriteOutcome.OK // a final record was there already; it stays
    else WriteOutcome.LEASE_LOST
}

// One statement for a group of checkpoints of different runs, each fenced by its own token.
internal fun StoreContext.checkpoints(writes: List<CheckpointWrite>): List<WriteOutcome> {
    if (writes.size == 1) return writes.map { checkpoint(it.runId, it.fencingToken, it.record) }
    require(writes.map { it.runId }.toSet().size == writes.size) { "a group of checkpoints has at most one per run" }
    return autocommit {
        val (v, vArgs) = groupTable(
            listOf(
                "run_id" to "TEXT", "fencing_token" to "BIGINT", "step_id" to "TEXT", "kind" to "TEXT", "status" to "TEXT",
                "result" to "TEXT", "failure" to "TEXT", "attempts" to "INTEGER", "wake_at" to "BIGINT",
            ),
            writes.inLockOrder { it.runId }.map { w ->
                val r = w.record
                listOf(w.runId, w.fencingToken, r.stepId, r.kind.name, r.status.name, r.result, r.failure, r.attempts, r.wakeAt)
            },
        )
        val written = query(
            """$v
               ${insertRecordsFrom("v", "EXISTS (SELECT 1 FROM stent_runs r WHERE r.id = v.run_id AND r.fencing_token = v.fencing_token AND r.status = 'RUNNING' ${dialect.shareLock})")}
               RETURNING run_id""",
            vArgs,
        ) { it.getString(1) }.toHashSet()
        // not written: a final record was there already (it stays), or the lease is gone
        writes.map { if (it.runId in written || holdsLease(it.runId, it.fencingToken)) WriteOutcome.OK else WriteOutcome.LEASE_LOST }
    }
}

internal fun StoreContext.consumeSignal(runId: String, fencingToken: Long, name: String, stepId: String): StoredRecord? = tx {
    if (!holdsLease(runId, fencingToken)) throw LeaseLostException(runId)
    val signal = query(
        """SELECT seq, payload, trace_context FROM stent_signals WHERE run_id = ? AND name = ? AND consumed_by IS NULL
           ORDER BY seq LIMIT 1 ${dialect.rowLock}""",
        listOf(runId, name),
    ) { Triple(it.getLong("seq"), it.getString("payload"), it.getString("trace_context")) }.firstOrNull() ?: return@tx null
    update("UPDATE stent_signals SET consumed_by = ?, consumed_at = $now WHERE seq = ?", listOf(stepId, signal.first))
    val record = StoredRecord(stepId, RecordKind.SIGNAL, RecordStatus.COMPLETED, result = signal.second, traceContext = signal.third)
    check(upsertRecord(runId, fencingToken, record) == 1) { "signal wait '$stepId' of run '$runId' was already final" }
    record
}

internal fun StoreContext.listRecords(runId: String): List<StoredRecord> = transaction(db) {
    RecordsTable.selectAll().where { RecordsTable.runId eq runId }
        .orderBy(RecordsTable.createdAt to SortOrder.ASC, RecordsTable.stepId to SortOrder.ASC)
        .map(::recordOf)
}

// A run's events are records `event:<key>#<version>`: one indexed range of its records.
internal fun StoreContext.listEvents(runId: String, key: String): List<StoredRecord> = autocommit {
    val (versioned, versionArgs) = startsWith("step_id", EventRecords.prefix(key) + "#")
    query("SELECT * FROM stent_records WHERE run_id = ? AND kind = 'EVENT' AND $versioned", listOf<Any?>(runId) + versionArgs) { recordOf(it) }
}.sortedBy { EventRecords.version(key, it.stepId) }
