package dev.stent.exposed.internal

import dev.stent.RunStatus
import dev.stent.store.RunQuery
import dev.stent.store.RunRecord
import org.jetbrains.exposed.v1.core.SortOrder
import org.jetbrains.exposed.v1.core.and
import org.jetbrains.exposed.v1.core.eq
import org.jetbrains.exposed.v1.core.isNotNull
import org.jetbrains.exposed.v1.core.isNull
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
        }
        .orderBy(RunsTable.createdAt to SortOrder.DESC, RunsTable.id to SortOrder.DESC)
        .limit(query.limit).offset(query.offset.toLong())
        .map(::runRecord)
}
