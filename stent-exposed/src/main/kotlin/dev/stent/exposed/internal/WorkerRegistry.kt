package dev.stent.exposed.internal

import dev.stent.store.WorkerRecord

// Workers announce what they serve, so describe() can say when nobody serves a run.

internal fun StoreContext.registerWorker(worker: WorkerRecord) = tx {
    // workers that stopped or vanished days ago are forgotten here, so the table stays small
    update("DELETE FROM stent_workers WHERE last_seen_at < $now - ?", listOf(FORGET_WORKERS_AFTER_MS))
    val queues = worker.queues?.let { namesJson.encodeToString(namesSerializer, it) }
    val args = listOf<Any?>(worker.id, namesJson.encodeToString(namesSerializer, worker.workflowNames), queues, worker.leaseMs)
    if (update(
            "UPDATE stent_workers SET workflow_names = ?, queues = CAST(? AS TEXT), lease_ms = ?, started_at = $now, last_seen_at = $now, stopped_at = NULL WHERE id = ?",
            args.drop(1) + worker.id,
        ) == 0
    ) {
        update(
            """INSERT INTO stent_workers (id, workflow_names, queues, lease_ms, started_at, last_seen_at)
               VALUES (?, ?, CAST(? AS TEXT), ?, $now, $now)""",
            args,
        )
    }
}

internal fun StoreContext.deregisterWorker(workerId: String) {
    autocommit { update("UPDATE stent_workers SET stopped_at = $now, last_seen_at = $now WHERE id = ?", listOf(workerId)) }
}

internal fun StoreContext.listWorkers(): List<WorkerRecord> = autocommit {
    query("SELECT * FROM stent_workers", emptyList()) { rs ->
        WorkerRecord(
            rs.getString("id"), namesJson.decodeFromString(namesSerializer, rs.getString("workflow_names")),
            rs.getString("queues")?.let { namesJson.decodeFromString(namesSerializer, it) }, rs.getLong("lease_ms"),
            rs.getLong("started_at"), rs.getLong("last_seen_at"), rs.longOrNull("stopped_at"),
        )
    }
}

/** Worker registrations not seen for this long are deleted. */
private const val FORGET_WORKERS_AFTER_MS = 7L * 86_400_000L
