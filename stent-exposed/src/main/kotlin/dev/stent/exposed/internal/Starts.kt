package dev.stent.exposed.internal

import dev.stent.store.CreateRunResult
import dev.stent.store.DirectlyClaimed
import dev.stent.store.NewRun
import java.sql.ResultSet

// Starting runs: one statement for one start or a group of them; an id that exists is left as it is. A start
// a worker of the starting process claims at once is inserted RUNNING under its first lease (see insertRuns).

// One autocommit statement when the id is new (the common case).
internal fun StoreContext.createRun(run: NewRun): CreateRunResult = autocommit {
    val inserted = query(
        """WITH v (id, workflow_name, input, queue, priority, delay_ms, deadline_at, timeout_ms, parent_id, parent_call, detached, partition_key,
                   trace_context, lease_owner, lease_ms) AS
             (VALUES (CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER),
                      CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BOOLEAN),
                      CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT)))
           $insertRuns
           ON CONFLICT (id) DO NOTHING $insertedRuns""",
        startColumns(run),
        ::insertedRun,
    ).firstOrNull()
    if (inserted != null) {
        // a run claimed at creation is for this process's worker: the others need no wake-up
        if (inserted.second == null) wake(WakeUpMessage.WORK)
        CreateRunResult(true, run.workflowName, inserted.second)
    } else {
        CreateRunResult(false, query("SELECT workflow_name FROM stent_runs WHERE id = ?", listOf(run.id)) { it.getString(1) }.single())
    }
}

// One statement for a group of starts: a multi-row insert that skips ids that exist.
internal fun StoreContext.createRuns(runs: List<NewRun>): List<CreateRunResult> {
    if (runs.size == 1) return listOf(createRun(runs.single()))
    val first = runs.distinctBy { it.id }
    val inserted = autocommit { insertRunsIn(this, first) }
    // announced before anything else can fail: the runs exist now
    if (inserted.values.any { it == null }) wake(WakeUpMessage.WORK)
    val existing = runs.map { it.id }.filter { it !in inserted }.toSet()
    val workflowNames = if (existing.isEmpty()) emptyMap() else autocommit {
        val (ids, idArgs) = inList("id", existing)
        query("SELECT id, workflow_name FROM stent_runs WHERE $ids", idArgs) { it.getString(1) to it.getString(2) }.toMap()
    }
    val seen = HashSet<String>()
    return runs.map { run ->
        val created = run.id in inserted && seen.add(run.id)
        // a later duplicate in the group sees the run its first occurrence created
        if (created) CreateRunResult(true, run.workflowName, inserted[run.id])
        else CreateRunResult(false, if (run.id in inserted) first.first { it.id == run.id }.workflowName else workflowNames.getValue(run.id))
    }
}

/** Inserts [runs] (distinct ids) in one statement, skipping ids that exist; returns the ids inserted, each with its lease when claimed at creation. */
internal fun StoreContext.insertRunsIn(c: java.sql.Connection, runs: List<NewRun>): Map<String, DirectlyClaimed?> = with(c) {
    val (v, vArgs) = groupTable(
        listOf(
            "id" to "TEXT", "workflow_name" to "TEXT", "input" to "TEXT", "queue" to "TEXT", "priority" to "INTEGER",
            "delay_ms" to "BIGINT", "deadline_at" to "BIGINT", "timeout_ms" to "BIGINT", "parent_id" to "TEXT", "parent_call" to "TEXT",
            "detached" to "BOOLEAN", "partition_key" to "TEXT", "trace_context" to "TEXT", "lease_owner" to "TEXT", "lease_ms" to "BIGINT",
        ),
        runs.map(::startColumns),
    )
    query(
        """$v
           $insertRuns
           ON CONFLICT (id) DO NOTHING $insertedRuns""",
        vArgs,
        ::insertedRun,
    ).toMap()
}

/** The values of [run] in the order of the columns of `v` in [StoreContext.insertRuns]. */
private fun startColumns(run: NewRun): List<Any?> = listOf(
    run.id, run.workflowName, run.input, run.queue, run.priority, run.delayMs, run.deadlineAtMs, run.timeoutMs, run.parentId, run.parentCall,
    run.detached, run.partitionKey, run.traceContext, run.claimFor?.workerId, run.claimFor?.leaseMs,
)

/** A row of [StoreContext.insertedRuns]: the id, and the run's first lease when it was inserted claimed. */
private fun insertedRun(rs: ResultSet): Pair<String, DirectlyClaimed?> = rs.getString("id") to
    if (rs.getString("status") == "RUNNING") DirectlyClaimed(rs.getLong("fencing_token"), rs.longOrNull("deadline_at"), rs.getLong("started_at")) else null
