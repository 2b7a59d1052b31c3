package dev.stent.exposed.internal

import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.ClaimedRun
import dev.stent.store.HeartbeatResult
import dev.stent.store.HeldLease
import dev.stent.store.WriteOutcome

// Claiming runs, renewing their leases, giving them back.

// The claim is one statement (atomic by itself); the records are read after it, under the new lease.
internal fun StoreContext.claim(request: ClaimRequest): ClaimResult = autocommit {
    val names = request.workflowNames.toList()
    val queues = request.queues.toList()
    // names and queues filter in SQL, so runs this worker cannot execute never block the ones it can
    val filter = "workflow_name IN (${marks(names.size)})" + if (queues.isEmpty()) "" else " AND queue IN (${marks(queues.size)})"
    val filterArgs = names + queues
    // Two candidate sets, each walking its partial index: runs whose lease expired (recovery, taken first),
    // then ready runs, highest priority first and then longest ready.
    val expired = "SELECT id, 0 AS pass, priority, lease_expires_at AS since FROM stent_runs WHERE status = 'RUNNING' AND lease_expires_at < $now AND $filter"
    val ready = "SELECT id, 1 AS pass, priority, ready_at AS since FROM stent_runs WHERE status IN ('PENDING', 'WAITING') AND ready_at <= $now AND $filter"
    val set = """SET status = 'RUNNING', lease_owner = ?, fencing_token = fencing_token + 1,
               lease_expires_at = $now + ?, claim_count = claim_count + 1, started_at = COALESCE(started_at, $now),
               updated_at = $now, ready_at = NULL, wait_signals = NULL, parked_at = NULL, parked_until = NULL"""
    val returning = "RETURNING stent_runs.id, workflow_name, input, fencing_token, claim_count, cancel_requested, deadline_at, parent_id, $now AS now"
    val (sql, args) = dialect.claim(ClaimParts(expired, ready, set, returning, filterArgs, request.limit, request.workerId, request.leaseMs))
    var dbNow: Long? = null
    val claimed = query(sql, args) { rs ->
        dbNow = rs.getLong("now")
        ClaimRow(
            rs.getString("id"), rs.getString("workflow_name"), rs.getString("input"), rs.getLong("fencing_token"), rs.getInt("claim_count"),
            rs.getBoolean("cancel_requested"), rs.longOrNull("deadline_at"), rs.getString("parent_id"),
        )
    }
    // a run's first claim takes token 1 (tokens start at 0 and only grow); before it, nothing could write a record
    val resumed = claimed.filter { it.fencingToken > 1 }.map { it.id }
    val records = if (resumed.isEmpty()) emptyMap() else try {
        val (ids, idArgs) = inList("run_id", resumed)
        query(
            "SELECT * FROM stent_records WHERE $ids ORDER BY created_at",
            idArgs,
        ) { rs -> rs.getString("run_id") to recordOf(rs) }.groupBy({ it.first }, { it.second })
    } catch (e: Exception) {
        // the claim committed: give the runs back (with a back-off, counted toward the poison guard) before failing
        // (on this connection: the pool may have no other)
        for (run in claimed) runCatching { releaseIn(run.id, run.fencingToken, CLAIM_READ_BACKOFF_MS) }.onFailure { e.addSuppressed(it) }
        throw e
    }
    // when the next run this worker could claim becomes ready: a timer, a delayed start or a lease expiring
    val nextReadyAt = if (claimed.isNotEmpty()) null else query(
        """SELECT (SELECT MIN(ready_at) FROM stent_runs WHERE status IN ('PENDING', 'WAITING') AND $filter) AS ready,
                  (SELECT MIN(lease_expires_at) FROM stent_runs WHERE status = 'RUNNING' AND $filter) AS expires""",
        filterArgs + filterArgs,
    ) { listOfNotNull(it.longOrNull("ready"), it.longOrNull("expires")).minOrNull() }.single()
    ClaimResult(
        claimed.map {
            ClaimedRun(
                it.id, it.workflowName, it.input, it.fencingToken, it.claimCount, records[it.id].orEmpty(), it.cancelRequested, it.deadlineAt,
                it.parentId,
            )
        },
        dbNow ?: nowMs(),
        nextReadyAt,
    )
}

internal class ClaimRow(
    val id: String, val workflowName: String, val input: String, val fencingToken: Long, val claimCount: Int,
    val cancelRequested: Boolean, val deadlineAt: Long?, val parentId: String?,
)

internal fun StoreContext.release(runId: String, fencingToken: Long, retryAfterMs: Long?): WriteOutcome =
    autocommit { releaseIn(runId, fencingToken, retryAfterMs) }.also { if (it == WriteOutcome.OK && retryAfterMs == null) wake(WakeUpMessage.WORK) }

internal fun StoreContext.heartbeat(workerId: String, runIds: Collection<String>, leaseMs: Long): HeartbeatResult = tx {
    val (sql, args) = dialect.heartbeat(inList("id", runIds), workerId, leaseMs)
    val leases = if (runIds.isEmpty()) emptyList() else query(sql, args) {
        HeldLease(it.getString("id"), it.getLong("fencing_token"), it.getBoolean("cancel_requested"))
    }
    update("UPDATE stent_workers SET last_seen_at = $now WHERE id = ?", listOf(workerId))
    HeartbeatResult(leases, nowMs())
}

/** After a claim whose read of records failed, its runs are claimable again after this. */
private const val CLAIM_READ_BACKOFF_MS = 1_000L
