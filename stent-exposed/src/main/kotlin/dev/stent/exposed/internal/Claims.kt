package dev.stent.exposed.internal

import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.ClaimedRun
import dev.stent.store.HeartbeatResult
import dev.stent.store.HeldLease
import dev.stent.store.QueueLimitsRecord
import dev.stent.store.WriteOutcome

// Claiming runs, renewing their leases, giving them back.

// The claim is one statement (atomic by itself); the records are read after it, under the new lease. Runs of a
// queue with limits are picked by a branch of that statement that counts what the queue runs; on PostgreSQL a
// statement before it, in the same transaction, locks those queues' rows, so claims of one limited queue take
// turns and each counts the runs the one before it claimed (see docs/architecture.md, "Limits live in the claim").
internal fun StoreContext.claim(request: ClaimRequest): ClaimResult = autocommit {
    val (statement, filter, filterArgs) = claimStatement(this, request)
    var dbNow: Long? = null
    val claimed = queryAfter(statement.skip, statement.sql, statement.args) { rs ->
        dbNow = rs.getLong("now")
        ClaimRow(
            rs.getString("id"), rs.getString("workflow_name"), rs.getString("input"), rs.getLong("fencing_token"), rs.getInt("claim_count"),
            rs.getBoolean("cancel_requested"), rs.longOrNull("deadline_at"), rs.getString("parent_id"), rs.getString("queue"),
            rs.longOrNull("started_at"), rs.getString("trace_context"),
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
    // when the next run this worker could claim becomes ready: a timer, a delayed start or a lease expiring; ready
    // runs a limited queue holds back are looked at again shortly (a run of the queue ending or a rate window moving
    // on makes room, which no stored time tells)
    // read unless the claim took all it asked for (then the worker claims again soon anyway): a worker that took a
    // timer's run must still wake for the next one, due a moment later, not after its idle pause
    val nextReadyAt = if (claimed.size >= request.limit) null else query(
        // each the first row of its partial index in order (`ORDER BY … LIMIT 1`, not MIN: SQLite reads a MIN under
        // these filters through the whole table, a million sleeping runs and all)
        """SELECT (SELECT ready_at FROM stent_runs WHERE ready_at IS NOT NULL AND status IN ('PENDING', 'WAITING') AND $filter
                   AND (queue NOT IN (SELECT name FROM stent_queues) OR ready_at > $now) ORDER BY ready_at LIMIT 1) AS ready,
                  (SELECT lease_expires_at FROM stent_runs WHERE lease_expires_at IS NOT NULL AND status = 'RUNNING' AND $filter
                   ORDER BY lease_expires_at LIMIT 1) AS expires,
                  (SELECT ready_at FROM stent_runs WHERE ready_at IS NOT NULL AND status IN ('PENDING', 'WAITING') AND ready_at <= $now AND $filter
                   AND queue IN (SELECT name FROM stent_queues) ORDER BY ready_at LIMIT 1) AS held,
                  $now AS now""",
        filterArgs + filterArgs + filterArgs,
    ) { rs ->
        listOfNotNull(rs.longOrNull("ready"), rs.longOrNull("expires"), rs.longOrNull("held")?.let { rs.getLong("now") + LIMITED_POLL_MS }).minOrNull()
    }.single()
    ClaimResult(
        claimed.map {
            ClaimedRun(
                it.id, it.workflowName, it.input, it.fencingToken, it.claimCount, records[it.id].orEmpty(), it.cancelRequested, it.deadlineAt,
                it.parentId, it.queue, it.startedAt, it.traceContext,
            )
        },
        dbNow ?: nowMs(),
        nextReadyAt,
    )
}

/**
 * The database's plan for the claim [request] would run now, with what it did: on PostgreSQL `EXPLAIN (ANALYZE,
 * BUFFERS)` in a transaction that is rolled back (nothing is claimed), on SQLite `EXPLAIN QUERY PLAN`. For the
 * benchmarks and operators: the claim must walk an index, never sort the backlog.
 */
internal fun StoreContext.explainClaim(request: ClaimRequest): String = dataSource.connection.use { c ->
    val (statement, _, _) = claimStatement(c, request)
    // the lock of limited queues (PostgreSQL) goes before the claim: its arguments first
    val sql = statement.sql.substringAfterLast("; ")
    val args = statement.args.drop(statement.sql.removeSuffix(sql).count { it == '?' })
    when (dialect) {
        is SqliteDialect -> c.query("EXPLAIN QUERY PLAN $sql", args) { it.getString("detail") }.joinToString("\n")
        is PostgresDialect -> {
            c.autoCommit = false
            try {
                dialect.claimSettings?.let { setting -> c.createStatement().use { it.execute(setting) } }
                c.query("EXPLAIN (ANALYZE, BUFFERS) $sql", args) { it.getString(1) }.joinToString("\n")
            } finally {
                c.rollback()
                c.autoCommit = true
            }
        }
    }
}

/**
 * The claim statement for [request]: candidate sets over expired leases, ready runs of queues without limits and
 * one pick per limited queue; with, on PostgreSQL, the lock of the limited queues before it. Also the filter on
 * workflow names and queues, and its arguments.
 */
internal fun StoreContext.claimStatement(c: java.sql.Connection, request: ClaimRequest): Triple<ClaimStatement, String, List<Any?>> {
    val names = request.workflowNames.toList()
    val queues = request.queues.toList()
    // names and queues filter in SQL, so runs this worker cannot execute never block the ones it can
    val filter = "workflow_name IN (${marks(names.size)})" + if (queues.isEmpty()) "" else " AND queue IN (${marks(queues.size)})"
    val filterArgs = names + queues
    val limits = limitedQueues(c)
    val limited = limits.keys.filter { queues.isEmpty() || it in queues }.sorted()
    // Two candidate sets, each walking its partial index: runs whose lease expired (recovery, taken first: they
    // count as running already), then ready runs of queues without limits, highest priority first and then longest ready.
    val expired = "SELECT id, 0 AS pass, priority, lease_expires_at AS since FROM stent_runs WHERE status = 'RUNNING' AND lease_expires_at < $now AND $filter"
    val readyWhere = "status IN ('PENDING', 'WAITING') AND ready_at <= $now AND $filter AND queue NOT IN (SELECT name FROM stent_queues)"
    val ready = "SELECT id, 1 AS pass, priority, ready_at AS since FROM stent_runs WHERE $readyWhere"
    val anyReady = "EXISTS (SELECT 1 FROM stent_runs WHERE $readyWhere)"
    val set = """SET status = 'RUNNING', lease_owner = ?, fencing_token = fencing_token + 1,
               lease_expires_at = $now + ?, claim_count = claim_count + 1, started_at = COALESCE(started_at, $now),
               updated_at = $now, ready_at = NULL, wait_signals = NULL, parked_at = NULL, parked_until = NULL"""
    val returning = "RETURNING stent_runs.id, workflow_name, input, fencing_token, claim_count, cancel_requested, deadline_at, parent_id, " +
        "stent_runs.queue, started_at, trace_context, $now AS now"
    val branches = limited.map { q ->
        val known = limits.getValue(q)
        if (known.concurrencyPerKey == null && known.rateLimit == null) concurrencyBranch(q, names, request.limit) else limitedBranch(q, names, request.limit)
    }
    val (sql, args) = dialect.claim(
        ClaimParts(expired, ready, set, returning, filterArgs, request.limit, request.workerId, request.leaseMs, anyReady, branches),
    )
    // the claim's settings and, with limited queues on PostgreSQL, their lock go first, in the same round trip and
    // implicit transaction; each returns one result the claim's reader skips
    val lock = dialect.lockQueues(limited.size)
    val before = listOfNotNull(dialect.claimSettings, lock)
    val statement = ClaimStatement((before + sql).joinToString("; "), (if (lock == null) emptyList() else limited) + args, before.size)
    return Triple(statement, filter, filterArgs)
}

/** The claim's SQL, its arguments, and how many results of statements before it (locks) to skip. */
internal class ClaimStatement(val sql: String, val args: List<Any?>, val skip: Int)

/**
 * The claim's pick among the ready runs of [queue], which has limits: its highest-priority, longest-ready runs
 * (skipping partition keys at their limit, and first starts while the rate limit has no room: a run resuming after
 * a wait does not start again), as many as its concurrency, its keys' concurrency and its rate limit leave room for,
 * counted from the runs the queue executes and those it started within the rate period. The limits are read from
 * `stent_queues` by the statement itself, so every worker applies the stored ones.
 */
private fun StoreContext.limitedBranch(queue: String, names: List<String>, limit: Int): Pair<String, List<Any?>> {
    fun limitOf(column: String) = "(SELECT $column FROM stent_queues WHERE name = ?)"
    val runningOfKey = "SELECT COUNT(*) FROM stent_runs k WHERE k.lease_owner IS NOT NULL AND k.queue = ? AND k.partition_key ="
    // room left by the rate limit: its starts within the period (a run's first claim sets started_at); uncorrelated,
    // so the database counts them once per claim, not once per candidate
    val startedInPeriod = "SELECT COUNT(*) FROM stent_runs s WHERE s.queue = ? AND s.started_at > $now -"
    val order = "ORDER BY c.priority DESC, c.ready_at"
    val sql = """SELECT u.id, 1 AS pass, u.priority, u.since FROM (
            SELECT t.id, t.priority, t.since, q.concurrency, ROW_NUMBER() OVER (ORDER BY t.priority DESC, t.since) AS n
            FROM (
                SELECT c.id, c.priority, c.ready_at AS since, c.started_at, c.partition_key,
                    ROW_NUMBER() OVER (PARTITION BY c.partition_key $order) AS kn,
                    SUM(CASE WHEN c.started_at IS NULL THEN 1 ELSE 0 END) OVER ($order ROWS UNBOUNDED PRECEDING) AS sn,
                    ($runningOfKey c.partition_key) AS krun
                FROM (SELECT id, priority, ready_at, started_at, partition_key FROM stent_runs
                      WHERE status IN ('PENDING', 'WAITING') AND ready_at <= $now AND queue = ? AND workflow_name IN (${marks(names.size)})
                        AND (partition_key IS NULL OR ${limitOf("key_concurrency")} IS NULL
                             OR ($runningOfKey stent_runs.partition_key) < ${limitOf("key_concurrency")})
                        AND (started_at IS NOT NULL OR ${limitOf("rate_limit")} IS NULL
                             OR ($startedInPeriod ${limitOf("rate_period_ms")}) < ${limitOf("rate_limit")})
                      ORDER BY priority DESC, ready_at LIMIT ? ${dialect.claimLock}) c
            ) t CROSS JOIN stent_queues q
            WHERE q.name = ?
              AND (q.key_concurrency IS NULL OR t.partition_key IS NULL OR t.kn <= q.key_concurrency - t.krun)
              AND (q.rate_limit IS NULL OR t.started_at IS NOT NULL OR t.sn <= q.rate_limit - ($startedInPeriod ${limitOf("rate_period_ms")}))
        ) u
        WHERE u.concurrency IS NULL OR u.n <= u.concurrency - (SELECT COUNT(*) FROM stent_runs k WHERE k.lease_owner IS NOT NULL AND k.queue = ?)"""
    val args = listOf<Any?>(queue) + // krun
        listOf(queue) + names + // the queue's ready runs
        listOf(queue, queue, queue) + // key limit, running of key, key limit
        listOf(queue, queue, queue, queue) + // rate limit, started in period, its period, rate limit
        listOf(limit, queue, queue, queue, queue) // LIMIT, q.name, started in period and its period, running in queue
    return sql to args
}

/**
 * The pick of a queue limited by concurrency alone, as this process last read its limits: its best ready runs, as
 * many as its concurrency leaves room for, with no counting per row. It takes nothing while the stored limits have
 * a key or rate limit too (set since this process read them): the next claim after the re-read uses [limitedBranch].
 */
private fun StoreContext.concurrencyBranch(queue: String, names: List<String>, limit: Int): Pair<String, List<Any?>> {
    val running = "SELECT COUNT(*) FROM stent_runs k WHERE k.lease_owner IS NOT NULL AND k.queue = q.name"
    // never negative (SQLite reads a negative LIMIT as none) and never NULL (PostgreSQL reads a NULL LIMIT as none)
    val room = """(SELECT CASE WHEN q.key_concurrency IS NOT NULL OR q.rate_limit IS NOT NULL THEN 0
                              WHEN q.concurrency IS NULL THEN ?
                              WHEN q.concurrency - ($running) <= 0 THEN 0
                              WHEN q.concurrency - ($running) < ? THEN q.concurrency - ($running)
                              ELSE ? END
                   FROM stent_queues q WHERE q.name = ?)"""
    val sql = """SELECT id, 1 AS pass, priority, ready_at AS since FROM stent_runs
                 WHERE status IN ('PENDING', 'WAITING') AND ready_at <= $now AND queue = ? AND workflow_name IN (${marks(names.size)})
                 ORDER BY priority DESC, ready_at LIMIT COALESCE($room, 0) ${dialect.claimLock}"""
    return sql to listOf<Any?>(queue) + names + listOf(limit, limit, limit, queue)
}

/** The queues with limits, as this process last read them (at most [LIMITS_REFRESH_MS] ago). */
private fun StoreContext.limitedQueues(c: java.sql.Connection): Map<String, QueueLimitsRecord> {
    val cached = queueLimitsCache
    if (cached != null && System.nanoTime() - cached.first < LIMITS_REFRESH_MS * 1_000_000) return cached.second
    val generation = queueLimitsGeneration.get()
    val fresh = c.query("SELECT * FROM stent_queues", emptyList(), ::queueLimitsOf).associateBy { it.name }
    // a change of limits in this process meanwhile is not overwritten by what was read before it
    if (queueLimitsGeneration.get() == generation) queueLimitsCache = System.nanoTime() to fresh
    return fresh
}

/**
 * How often a process re-reads which queues have limits. A queue that gets limits is skipped by claims of a
 * process that has not re-read them yet; a worker that declares limits sees them at once. (A claim whose statement
 * began before the limits were first stored may still take runs of the queue as unlimited: limits hold fully from
 * the claims that start after they are stored.)
 */
private const val LIMITS_REFRESH_MS = 1_000L

/** How soon an idle worker claims again while a limited queue holds ready runs back. */
private const val LIMITED_POLL_MS = 100L

internal class ClaimRow(
    val id: String, val workflowName: String, val input: String, val fencingToken: Long, val claimCount: Int,
    val cancelRequested: Boolean, val deadlineAt: Long?, val parentId: String?, val queue: String?, val startedAt: Long?,
    val traceContext: String?,
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
