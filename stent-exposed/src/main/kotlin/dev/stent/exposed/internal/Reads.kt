package dev.stent.exposed.internal

import dev.stent.RunStatus
import dev.stent.store.RunQuery
import dev.stent.store.RunRecord
import dev.stent.store.StatusCount
import dev.stent.store.StoreStats
import org.jetbrains.exposed.v1.core.SortOrder
import org.jetbrains.exposed.v1.core.and
import org.jetbrains.exposed.v1.core.eq
import org.jetbrains.exposed.v1.core.greaterEq
import org.jetbrains.exposed.v1.core.isNotNull
import org.jetbrains.exposed.v1.core.isNull
import org.jetbrains.exposed.v1.core.less
import org.jetbrains.exposed.v1.core.lessEq
import org.jetbrains.exposed.v1.core.or
import org.jetbrains.exposed.v1.jdbc.andWhere
import org.jetbrains.exposed.v1.jdbc.selectAll
import org.jetbrains.exposed.v1.jdbc.transactions.transaction

// Reading runs for clients: one, many, a filtered page.

// One autocommit SELECT: await() calls this for every run it waits for.
internal fun StoreContext.getRun(runId: String): RunRecord? = autocommit {
    query("SELECT * FROM stent_runs WHERE id = ?", listOf(runId), ::runRecord).singleOrNull()
}

internal fun StoreContext.getRuns(runIds: Collection<String>): List<RunRecord> = if (runIds.isEmpty()) emptyList() else autocommit {
    val (ids, idArgs) = inList("id", runIds)
    query("SELECT * FROM stent_runs WHERE $ids", idArgs, ::runRecord)
}

internal fun StoreContext.listRuns(query: RunQuery): List<RunRecord> = transaction(db) {
    RunsTable.selectAll()
        .apply {
            // a RUNNING run parked in its worker's memory reads, and lists, as WAITING
            when (val s = query.status) {
                null -> Unit
                RunStatus.WAITING -> andWhere {
                    (RunsTable.status eq s.name) or ((RunsTable.status eq RunStatus.RUNNING.name) and RunsTable.parkedAt.isNotNull())
                }
                RunStatus.RUNNING -> andWhere { (RunsTable.status eq s.name) and RunsTable.parkedAt.isNull() }
                else -> andWhere { RunsTable.status eq s.name }
            }
            query.workflowName?.let { w -> andWhere { RunsTable.workflowName eq w } }
            query.parentId?.let { p -> andWhere { RunsTable.parentId eq p } }
            query.queue?.let { q -> andWhere { RunsTable.queue eq q } }
            query.failureKind?.let { k -> andWhere { RunsTable.failureKind eq k.name } }
            if (query.deadLetters) andWhere { (RunsTable.status eq RunStatus.FAILED.name) and RunsTable.discardedAt.isNull() }
            query.createdAfter?.let { t -> andWhere { RunsTable.createdAt greaterEq t } }
            query.createdBefore?.let { t ->
                val id = query.beforeId
                // a page after a run: older runs, and those of the same millisecond listed after it (the order is created_at, id);
                // the plain bound lets the database start its index scan there instead of filtering every newer row
                if (id == null) {
                    andWhere { RunsTable.createdAt less t }
                } else {
                    andWhere { (RunsTable.createdAt lessEq t) and ((RunsTable.createdAt less t) or (RunsTable.id less id)) }
                }
            }
        }
        .orderBy(RunsTable.createdAt to SortOrder.DESC, RunsTable.id to SortOrder.DESC)
        .limit(query.limit).offset(query.offset.toLong())
        .map(::runRecord)
}

// What `stent stats` shows: one grouped scan of the runs, and the finished ones of the last hour through their index.
internal fun StoreContext.stats(): StoreStats = autocommit {
    val counts = query(
        """SELECT workflow_name, CASE WHEN status = 'RUNNING' AND parked_at IS NOT NULL THEN 'WAITING' ELSE status END AS s, COUNT(*) AS n
           FROM stent_runs GROUP BY workflow_name, s ORDER BY workflow_name, s""",
        emptyList(),
    ) { StatusCount(it.getString("workflow_name"), RunStatus.valueOf(it.getString("s")), it.getLong("n")) }
    query(
        """SELECT (SELECT MIN(created_at) FROM stent_runs WHERE status = 'PENDING') AS oldest,
                  (SELECT COUNT(*) FROM stent_runs WHERE finished_at >= $now - 60000) AS minute,
                  (SELECT COUNT(*) FROM stent_runs WHERE finished_at >= $now - 3600000) AS hour,
                  $now AS now""",
        emptyList(),
    ) { StoreStats(counts, it.longOrNull("oldest"), it.getLong("minute"), it.getLong("hour"), it.getLong("now")) }.single()
}

// One statement, so one snapshot: a run cannot move from due to running between two reads.
internal fun StoreContext.timeline(): dev.stent.store.Timeline = autocommit {
    query(
        """SELECT (SELECT COUNT(*) FROM stent_runs WHERE status = 'RUNNING') AS running,
                  (SELECT COUNT(*) FROM stent_runs WHERE status IN ('PENDING', 'WAITING') AND ready_at <= n.now)
                    + (SELECT COUNT(*) FROM stent_schedules WHERE paused = FALSE AND next_fire_at <= n.now) AS due,
                  (SELECT MIN(ready_at) FROM stent_runs WHERE status IN ('PENDING', 'WAITING') AND ready_at > n.now) AS next_run,
                  (SELECT MIN(next_fire_at) FROM stent_schedules WHERE paused = FALSE AND next_fire_at > n.now) AS next_schedule,
                  n.now AS now
           FROM (SELECT $now AS now) n""",
        emptyList(),
    ) {
        val next = listOfNotNull(it.longOrNull("next_run"), it.longOrNull("next_schedule")).minOrNull()
        dev.stent.store.Timeline(it.getLong("running"), it.getLong("due"), next, it.getLong("now"))
    }.single()
}
