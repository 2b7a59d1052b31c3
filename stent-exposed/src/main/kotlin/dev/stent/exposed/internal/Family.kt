package dev.stent.exposed.internal

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.store.ChildOutcome
import dev.stent.store.FinishWrite
import dev.stent.store.LeaseLostException
import dev.stent.store.SignalNames
import dev.stent.store.StoredRecord
import dev.stent.store.WriteOutcome
import java.sql.Connection

// Parents and children: a child's end tells its parent (a signal, in the transaction that ends the child), a parent's end
// cancels its attached children. Row locks go parent first, then child, in every path, so two of them never wait in a cycle.

/** What ending runs in one transaction announces after its commit. */
internal class FamilyWakes {
    val finished = ArrayList<String>()
    val cancelRequested = ArrayList<String>()
    val signalled = ArrayList<String>()
    var work = false
}

internal fun StoreContext.announce(wakes: FamilyWakes) {
    wakes.finished.forEach { wake(WakeUpMessage.FINISHED, it) }
    wakes.cancelRequested.forEach { wake(WakeUpMessage.CANCEL, it) }
    wakes.signalled.forEach { wake(WakeUpMessage.SIGNAL, it) }
    if (wakes.work) wake(WakeUpMessage.WORK)
}

/** The parent of [runId] and the call that started it, or null; locks the parent's row (before the child's, as every path does). */
internal fun StoreContext.lockParentOf(c: Connection, runId: String): Pair<String, String>? = with(c) {
    val parent = query("SELECT parent_id, parent_call FROM stent_runs WHERE id = ?", listOf(runId)) {
        it.getString("parent_id")?.let { p -> p to it.getString("parent_call") }
    }.firstOrNull() ?: return null
    query("SELECT 1 FROM stent_runs WHERE id = ? ${dialect.rowLock}", listOf(parent.first)) { true }
    parent
}

/** Stores [name] for [runId] unless it finished; a run WAITING for it becomes PENDING. */
internal fun StoreContext.signalIn(c: Connection, runId: String, name: String, payload: String, wakes: FamilyWakes) = with(c) {
    val run = query("SELECT status, wait_signals FROM stent_runs WHERE id = ?", listOf(runId)) {
        RunStatus.valueOf(it.getString("status")) to it.getString("wait_signals")
    }.firstOrNull() ?: return
    if (run.first.isFinished) return
    update("INSERT INTO stent_signals (run_id, name, payload, created_at) VALUES (?, ?, ?, $now)", listOf(runId, name, payload))
    wakes.signalled += runId
    val waited = run.second?.let { namesJson.decodeFromString(namesSerializer, it) }.orEmpty()
    if (run.first == RunStatus.WAITING && SignalNames.matches(waited, name)) {
        update("UPDATE stent_runs SET status = 'PENDING', ready_at = $now, updated_at = $now WHERE id = ? AND status = 'WAITING'", listOf(runId))
        wakes.work = true
    }
}

/** After [runId] ended as [outcome] in this transaction: tells its parent (locked already by [lockParentOf]). */
internal fun StoreContext.notifyParentIn(c: Connection, parent: Pair<String, String>?, outcome: ChildOutcome, wakes: FamilyWakes) {
    if (parent == null) return
    signalIn(c, parent.first, ChildOutcome.signalName(parent.second), outcome.encode(), wakes)
}

/**
 * Cancels the attached unfinished children of [runId], and theirs: a PENDING or WAITING child is
 * CANCELLED at once, a RUNNING one is flagged (its worker cancels it, and its own children then).
 */
internal fun StoreContext.cancelChildrenIn(c: Connection, runId: String, wakes: FamilyWakes): Unit = with(c) {
    // the subtree first, unlocked; then its rows locked in one statement, in the order every multi-row lock in Stent uses
    val tree = ArrayList<String>()
    val queue = ArrayDeque(listOf(runId))
    while (queue.isNotEmpty()) {
        val children = query(
            "SELECT id FROM stent_runs WHERE parent_id = ? AND detached = FALSE AND status IN ('PENDING', 'WAITING', 'RUNNING')",
            listOf(queue.removeFirst()),
        ) { it.getString("id") }
        tree += children
        queue += children
    }
    if (tree.isEmpty()) return
    val (ids, idArgs) = inList("id", tree)
    val locked = query(
        "SELECT id, status FROM stent_runs WHERE $ids AND status IN ('PENDING', 'WAITING', 'RUNNING') ${dialect.idOrder} ${dialect.rowLock}",
        idArgs,
    ) { it.getString("id") to RunStatus.valueOf(it.getString("status")) }
    for ((child, status) in locked) {
        if (status == RunStatus.RUNNING) {
            // its worker cancels it (and finishing it cancels what it started since)
            update("UPDATE stent_runs SET cancel_requested = TRUE, updated_at = $now WHERE id = ?", listOf(child))
            wakes.cancelRequested += child
        } else {
            update(
                """UPDATE stent_runs SET status = 'CANCELLED', finished_at = $now, updated_at = $now, ready_at = NULL, wait_signals = NULL
                   WHERE id = ?""",
                listOf(child),
            )
            wakes.finished += child
        }
    }
}

/**
 * Finishes that tell their runs' parents or cancel their children. Children of one parent that
 * finish together (the children of a map, group-committed by a worker) share one transaction that
 * locks their parent once and then them in id order: the parent-first order of every other path, so
 * the children of a map no longer commit one at a time on their parent's row. Every other family
 * finish (a run that cancels its children, a child alone) is a transaction of its own.
 */
internal fun StoreContext.finishFamilies(writes: List<FinishWrite>): List<WriteOutcome> {
    require(writes.map { it.runId }.toSet().size == writes.size) { "a group of finishes has at most one per run" }
    // each child's parent and the call that started it (the call names the signal): set at insert, never changed,
    // so one read outside the transactions serves them all
    // a run that continues as new locks its parent too: the parent's cancel cascade then sees either it or its next run
    val notifying = writes.filter { it.notifyParent || it.continueAs != null }.map { it.runId }
    val parents = if (notifying.isEmpty()) emptyMap() else autocommit {
        val (ids, idArgs) = inList("id", notifying)
        query("SELECT id, parent_id, parent_call FROM stent_runs WHERE $ids AND parent_id IS NOT NULL", idArgs) {
            it.getString("id") to (it.getString("parent_id") to it.getString("parent_call"))
        }.toMap()
    }
    val (children, others) = writes.partition { it.notifyParent && !it.cancelChildren }
    val outcomes = HashMap<String, WriteOutcome>()
    for ((parent, group) in children.groupBy { parents[it.runId]?.first }) {
        // a child whose parent is unknown finishes alone
        if (parent == null) group.forEach { outcomes[it.runId] = finishFamilyGroup(listOf(it), parents).single() }
        else group.zip(finishFamilyGroup(group, parents)).forEach { (w, o) -> outcomes[w.runId] = o }
    }
    others.forEach { outcomes[it.runId] = finishFamilyGroup(listOf(it), parents).single() }
    return writes.map { outcomes.getValue(it.runId) }
}

/** One transaction: the parent of [writes] (at most one between them, from [parents]) locked first, then each write's finish, signal and cascade. */
private fun StoreContext.finishFamilyGroup(writes: List<FinishWrite>, parents: Map<String, Pair<String, String>>): List<WriteOutcome> {
    val wakes = FamilyWakes()
    val outcomes = tx {
        for (parent in writes.mapNotNull { parents[it.runId]?.first }.distinct()) {
            query("SELECT 1 FROM stent_runs WHERE id = ? ${dialect.rowLock}", listOf(parent)) { true }
        }
        writes.inLockOrder { it.runId }.associate { w ->
            val written = finishIn(w.runId, w.fencingToken, w.status, w.output, w.failure)
            if (written == WriteOutcome.OK) {
                recordsOfFinishedIn(this, listOf(w), setOf(w.runId))
                if (w.notifyParent) notifyParentIn(this, parents[w.runId], ChildOutcome(w.status, w.output, w.failure), wakes)
                if (w.cancelChildren) cancelChildrenIn(this, w.runId, wakes)
                w.continueAs?.let { continueIn(this, w.runId, it, wakes) }
                wakes.finished += w.runId
            }
            w.runId to written
        }
    }
    announce(wakes)
    return writes.map { outcomes.getValue(it.runId) }
}

/**
 * The next run of [runId]'s chain, in the transaction that finished it: a copy of its row (workflow,
 * queue, priority, parent, partition, trace, a pending cancel request) with [next]'s id and input,
 * ready now; the finished run points to it, every run of the chain names the first (`chain_root`),
 * and the signals it had not taken move to it (its children's outcomes stay: they answer its calls only).
 */
private fun StoreContext.continueIn(c: Connection, runId: String, next: dev.stent.store.ContinueAs, wakes: FamilyWakes) = with(c) {
    var id = next.runId
    // an id taken already (a run someone started under it) gets a random suffix: the chain's ids are only a convention;
    // the engine reads the id used from here
    var tries = 0
    while (insertNext(c, runId, id, next) == 0) {
        check(++tries <= 5) { "cannot create the run continuing '$runId': ids '${next.runId}' and five random variants are taken" }
        id = next.runId.take(MAX_RUN_ID - 9) + "-" + java.util.UUID.randomUUID().toString().take(8)
    }
    update("UPDATE stent_runs SET continued_as = ?, chain_root = COALESCE(chain_root, id) WHERE id = ?", listOf(id, runId))
    next.createdId = id
    val (child, childArgs) = startsWith("name", ChildOutcome.signalName(""))
    update("UPDATE stent_signals SET run_id = ? WHERE run_id = ? AND consumed_by IS NULL AND NOT ($child)", listOf(id, runId) + childArgs)
    wakes.work = true
}

private fun StoreContext.insertNext(c: Connection, runId: String, id: String, next: dev.stent.store.ContinueAs): Int = with(c) {
    update(
        """INSERT INTO stent_runs (id, workflow_name, status, input, queue, priority, ready_at, deadline_at, fencing_token, claim_count,
               cancel_requested, created_at, updated_at, parent_id, parent_call, detached, partition_key, trace_context, retries, chain_root)
           SELECT ?, workflow_name, 'PENDING', ?, queue, priority, $now, $now + CAST(? AS BIGINT), 0, 0, cancel_requested, $now, $now,
               parent_id, parent_call, detached, partition_key, trace_context, 0, COALESCE(chain_root, id)
           FROM stent_runs WHERE id = ?
           ON CONFLICT (id) DO NOTHING""",
        listOf(id, next.input, next.timeoutMs, runId),
    )
}

private const val MAX_RUN_ID = 200

/**
 * The latest run (the one without a next) of the continue-as-new chain whose first id is [root],
 * in one indexed read, even when retention deleted earlier runs; null when no chain has that root.
 */
internal fun StoreContext.latestOfChain(c: Connection, root: String): String? = with(c) {
    query("SELECT id FROM stent_runs WHERE chain_root = ? AND continued_as IS NULL ORDER BY created_at DESC LIMIT 1", listOf(root)) {
        it.getString("id")
    }.firstOrNull()
}

/** Takes signals by name prefix into records, for a map collecting its children's outcomes. */
internal fun StoreContext.consumeSignals(
    runId: String,
    fencingToken: Long,
    namePrefix: String,
    recordPrefix: String,
    kind: RecordKind,
    limit: Int,
): List<StoredRecord> = tx {
    if (!holdsLease(runId, fencingToken)) throw LeaseLostException(runId)
    val (named, nameArgs) = startsWith("name", namePrefix)
    val signals = query(
        """SELECT seq, name, payload FROM stent_signals WHERE run_id = ? AND consumed_by IS NULL AND $named
           ORDER BY seq LIMIT ? ${dialect.rowLock}""",
        listOf<Any?>(runId) + nameArgs + limit,
    ) { Triple(it.getLong("seq"), it.getString("name"), it.getString("payload")) }
    signals.map { (seq, name, payload) ->
        val id = recordPrefix + name.removePrefix(namePrefix)
        update("UPDATE stent_signals SET consumed_by = ?, consumed_at = $now WHERE seq = ?", listOf(id, seq))
        StoredRecord(id, kind, RecordStatus.COMPLETED, result = payload).also {
            check(upsertRecord(runId, fencingToken, it) == 1) { "record '$id' of run '$runId' was already final" }
        }
    }
}
