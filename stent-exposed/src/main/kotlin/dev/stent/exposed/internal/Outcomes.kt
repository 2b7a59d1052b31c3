package dev.stent.exposed.internal

import dev.stent.RunStatus
import dev.stent.UnknownRunException
import dev.stent.store.CancelResult
import dev.stent.store.ChildOutcome
import dev.stent.store.FinishWrite
import dev.stent.store.SignalNames
import dev.stent.store.UnloadOutcome
import dev.stent.store.WriteOutcome

// Ending a turn of a run: unload it, finish it (one or a group); and what clients do to runs: signal, cancel.

internal fun StoreContext.unload(runId: String, fencingToken: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome {
    val wakes = FamilyWakes()
    return tx {
        // the parent's row before the run's, as every path that locks both
        val parent = lockParentOf(this, runId)
        unloadIn(runId, fencingToken, wakeAtMs, signalNames).also {
            // cancelled on the way out: a child tells its parent, a parent cancels its children
            if (it == UnloadOutcome.CANCELLED) {
                notifyParentIn(this, parent, ChildOutcome(RunStatus.CANCELLED), wakes)
                cancelChildrenIn(this, runId, wakes)
            }
        }
    }.also { announce(wakes) }.also {
        when (it) {
            UnloadOutcome.READY -> wake(WakeUpMessage.WORK)
            UnloadOutcome.CANCELLED -> wake(WakeUpMessage.FINISHED, runId)
            else -> Unit
        }
    }
}

internal fun StoreContext.finish(
    runId: String,
    fencingToken: Long,
    status: RunStatus,
    output: String?,
    failure: String?,
    notifyParent: Boolean = false,
    cancelChildren: Boolean = false,
    continueAs: dev.stent.store.ContinueAs? = null,
): WriteOutcome = if (notifyParent || cancelChildren || continueAs != null) {
    finishFamilies(listOf(FinishWrite(runId, fencingToken, status, output, failure, notifyParent, cancelChildren, continueAs))).single()
} else {
    autocommit { finishIn(runId, fencingToken, status, output, failure) }.also { if (it == WriteOutcome.OK) wake(WakeUpMessage.FINISHED, runId) }
}

// One statement for a group of finishes, each fenced by its own token.

/** A finish that writes more than its own row (a parent's signal, a cascade, the next run), in a transaction of its own. */
private val FinishWrite.inFamily: Boolean get() = notifyParent || cancelChildren || continueAs != null

internal fun StoreContext.finishes(writes: List<FinishWrite>): List<WriteOutcome> {
    require(writes.map { it.runId }.toSet().size == writes.size) { "a group of finishes has at most one per run" }
    // finishes that tell a parent or cancel children go through transactions of their own (see finishFamilies)
    if (writes.any { it.inFamily } || (writes.size == 1 && writes.single().records.isEmpty())) {
        val (family, plain) = writes.partition { it.inFamily }
        val outcomes = HashMap<String, WriteOutcome>()
        if (family.isNotEmpty()) family.zip(finishFamilies(family)).forEach { (w, o) -> outcomes[w.runId] = o }
        val single = plain.singleOrNull()
        if (single != null && single.records.isEmpty()) {
            outcomes[single.runId] = finish(single.runId, single.fencingToken, single.status, single.output, single.failure)
        } else if (plain.isNotEmpty()) {
            plain.zip(finishes(plain)).forEach { (w, o) -> outcomes[w.runId] = o }
        }
        return writes.map { outcomes.getValue(it.runId) }
    }
    writes.forEach { require(it.status.isFinished) { "finish needs a final status, not ${it.status}" } }
    // records folded into their finish are written in its transaction, for the runs it finished: on PostgreSQL in
    // the same statement, on SQLite (no writes in WITH) by a second statement of the transaction
    val finished = when {
        writes.all { it.records.isEmpty() } -> autocommit { finishGroupIn(this, writes) }
        dialect is PostgresDialect -> autocommit { finishGroupIn(this, writes, withRecords = true) }
        else -> jdbcTx { finishGroupIn(this, writes).also { recordsOfFinishedIn(this, writes, it) } }
    }
    finished.forEach { wake(WakeUpMessage.FINISHED, it) }
    return writes.map { if (it.runId in finished) WriteOutcome.OK else WriteOutcome.LEASE_LOST }
}

/**
 * Finishes [writes] (plain ones: no parent, children or next run) in one statement, each fenced by its token; returns
 * the ids finished. [withRecords] (PostgreSQL): the same statement upserts their [FinishWrite.records], for the runs it
 * finished (its update holds their rows, so they need no fence of their own).
 */
private fun StoreContext.finishGroupIn(c: java.sql.Connection, writes: List<FinishWrite>, withRecords: Boolean = false): Set<String> = with(c) {
    val (v, vArgs) = groupTable(
        listOf("id" to "TEXT", "fencing_token" to "BIGINT", "status" to "TEXT", "output" to "TEXT", "failure" to "TEXT", "failure_kind" to "TEXT"),
        writes.inLockOrder { it.runId }.map {
            listOf(it.runId, it.fencingToken, it.status.name, it.output, it.failure, failureKindOf(it.status, it.failure))
        },
    )
    val (locked, lockedJoin) = dialect.groupLock
    val update = """UPDATE stent_runs SET status = v.status, output = v.output, failure = v.failure, failure_kind = v.failure_kind, finished_at = $now,
               updated_at = $now, lease_owner = NULL, lease_expires_at = NULL, ready_at = NULL, wait_signals = NULL
           FROM v WHERE stent_runs.id = v.id AND stent_runs.fencing_token = v.fencing_token AND stent_runs.status = 'RUNNING'$lockedJoin
           RETURNING ${dialect.updatedId}"""
    if (!withRecords) return query("$v$locked\n$update", vArgs) { it.getString(1) }.toHashSet()
    val (r, rArgs) = recordsTable(c, writes)
    query(
        """$v$locked, f AS ($update AS id), r AS ${r.removePrefix("WITH v AS ")},
           w AS (${insertRecordsFrom("r", "run_id IN (SELECT id FROM f)")})
           SELECT id FROM f""",
        vArgs + rArgs,
    ) { it.getString(1) }.toHashSet()
}

/** The group table `v` of the [FinishWrite.records] of [writes], and its arguments. */
private fun StoreContext.recordsTable(c: java.sql.Connection, writes: List<FinishWrite>): Pair<String, List<Any?>> = with(c) {
    groupTable(
        listOf(
            "run_id" to "TEXT", "step_id" to "TEXT", "kind" to "TEXT", "status" to "TEXT", "result" to "TEXT", "failure" to "TEXT",
            "attempts" to "INTEGER", "wake_at" to "BIGINT",
        ),
        writes.flatMap { w -> w.records.map { r -> listOf(w.runId, r.stepId, r.kind.name, r.status.name, r.result, r.failure, r.attempts, r.wakeAt) } },
    )
}

/**
 * Writes the [FinishWrite.records] of the runs of [writes] whose finish this transaction has just written ([finished]):
 * their fence held, and the finish holds their rows locked, so the records need no fence of their own.
 */
internal fun StoreContext.recordsOfFinishedIn(c: java.sql.Connection, writes: List<FinishWrite>, finished: Set<String>): Unit = with(c) {
    val mine = writes.filter { it.runId in finished && it.records.isNotEmpty() }
    if (mine.isEmpty()) return
    val (v, vArgs) = recordsTable(c, mine)
    update(
        """$v
           ${insertRecordsFrom("v", "TRUE")}""",
        vArgs,
    )
}

internal fun StoreContext.sendSignal(runId: String, name: String, payload: String, traceContext: String?) {
    var target = runId
    tx {
        // a run that continued as new passes its signals on to the latest run of its chain: the row read (and
        // locked) here says so, and only then is the chain looked up, so a signal to any other run costs no extra read
        var run: ChainedRun
        var hops = 0
        while (true) {
            val row = query(
                "SELECT status, wait_signals, continued_as, chain_root FROM stent_runs WHERE id = ? ${dialect.rowLock}",
                listOf(target),
            ) { ChainedRun(RunStatus.valueOf(it.getString("status")), it.getString("wait_signals"), it.getString("continued_as"), it.getString("chain_root")) }
                .firstOrNull()
            if (row == null) {
                // the first id of a chain whose first runs retention deleted still reaches its latest run
                target = (if (hops++ == 0) latestOfChain(this, runId) else null)
                    ?: throw UnknownRunException(runId, "cannot send signal '$name': the run was never started in this database; check the id")
                continue
            }
            run = row
            val next = row.continuedAs ?: break
            if (++hops > MAX_CHAIN_HOPS) break
            target = latestOfChain(this, row.chainRoot ?: target) ?: next
        }
        if (run.status.isFinished) {
            throw UnknownRunException(runId, "cannot send signal '$name': the run has finished (${run.status}); signals go only to runs that are not finished")
        }
        update(
            "INSERT INTO stent_signals (run_id, name, payload, created_at, trace_context) VALUES (?, ?, ?, $now, ?)",
            listOf(target, name, payload, traceContext),
        )
        val waitsForIt = SignalNames.matches(run.waitSignals?.let { namesJson.decodeFromString(namesSerializer, it) }.orEmpty(), name)
        if (run.status == RunStatus.WAITING && waitsForIt) {
            update(
                "UPDATE stent_runs SET status = 'PENDING', ready_at = $now, updated_at = $now WHERE id = ? AND status = 'WAITING'",
                listOf(target),
            )
        }
    }
    wake(WakeUpMessage.SIGNAL, target) // a signal wake-up also tells workers there may be work
}

/** A run as a signal or a cancel reads it, with where its continue-as-new chain goes on. */
private class ChainedRun(val status: RunStatus, val waitSignals: String?, val continuedAs: String?, val chainRoot: String?)

/** How many runs of a chain a signal follows after finding its latest (each continued meanwhile: a race, so a few). */
private const val MAX_CHAIN_HOPS = 1_000

// A run that continued as new is cancelled through its chain: the latest run is the one cancelled.
internal fun StoreContext.requestCancel(runId: String): CancelResult? {
    var target = runId
    repeat(MAX_CHAIN_HOPS) { hop ->
        val (result, next) = requestCancelOf(target)
        target = when {
            // the first id of a chain whose first runs retention deleted still reaches its latest run
            result == null && hop == 0 -> autocommit { latestOfChain(this, runId) } ?: return null
            else -> next ?: return result
        }
    }
    return requestCancelOf(target).first
}

/** Cancels [runId]; with it, the latest run of its chain when it continued as new (and was left as it is). */
private fun StoreContext.requestCancelOf(runId: String): Pair<CancelResult?, String?> {
    var announce: WakeUpMessage? = null
    var next: String? = null
    var continued: String? = null
    var root: String? = null
    val wakes = FamilyWakes()
    val result = tx {
        val parent = lockParentOf(this, runId)
        val run = query(
            "SELECT status, workflow_name, started_at, continued_as, chain_root, $now AS now FROM stent_runs WHERE id = ? ${dialect.rowLock}",
            listOf(runId),
        ) {
            continued = it.getString("continued_as")
            root = it.getString("chain_root")
            CancelResult(RunStatus.valueOf(it.getString("status")), false, it.getString("workflow_name"), it.longOrNull("started_at"), it.getLong("now"))
        }.firstOrNull() ?: return@tx null
        next = continued?.let { latestOfChain(this, root ?: runId) ?: it }
        val after = when (val status = run.status) {
            RunStatus.PENDING, RunStatus.WAITING -> {
                update(
                    """UPDATE stent_runs SET status = 'CANCELLED', finished_at = $now, updated_at = $now, ready_at = NULL,
                           wait_signals = NULL WHERE id = ?""",
                    listOf(runId),
                )
                announce = WakeUpMessage.FINISHED
                notifyParentIn(this, parent, ChildOutcome(RunStatus.CANCELLED), wakes)
                cancelChildrenIn(this, runId, wakes)
                RunStatus.CANCELLED
            }
            RunStatus.RUNNING -> {
                update("UPDATE stent_runs SET cancel_requested = TRUE, updated_at = $now WHERE id = ?", listOf(runId))
                announce = WakeUpMessage.CANCEL
                RunStatus.RUNNING
            }
            else -> status
        }
        CancelResult(after, after == RunStatus.CANCELLED && run.status != RunStatus.CANCELLED, run.workflowName, run.startedAt, run.dbNowMs)
    }
    announce?.let { wake(it, runId) }
    announce(wakes)
    return result to next
}

// A run waiting in its worker's memory keeps its lease; the mark only changes what reads show.
internal fun StoreContext.park(runId: String, fencingToken: Long, untilMs: Long, signalNames: Set<String>): WriteOutcome = autocommit {
    val signals = if (signalNames.isEmpty()) null else namesJson.encodeToString(namesSerializer, signalNames.toList())
    val n = update(
        "UPDATE stent_runs SET parked_at = $now, parked_until = ?, wait_signals = ? WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'",
        listOf(untilMs, signals, runId, fencingToken),
    )
    if (n == 1) WriteOutcome.OK else WriteOutcome.LEASE_LOST
}

internal fun StoreContext.unpark(runId: String, fencingToken: Long): WriteOutcome = autocommit {
    val n = update(
        "UPDATE stent_runs SET parked_at = NULL, parked_until = NULL, wait_signals = NULL WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'",
        listOf(runId, fencingToken),
    )
    if (n == 1) WriteOutcome.OK else WriteOutcome.LEASE_LOST
}
