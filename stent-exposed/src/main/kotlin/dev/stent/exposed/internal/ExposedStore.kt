package dev.stent.exposed.internal

import dev.stent.RunStatus
import dev.stent.UnknownRunException
import dev.stent.store.CheckpointWrite
import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.ClaimedRun
import dev.stent.store.CreateRunResult
import dev.stent.store.FinishWrite
import dev.stent.store.HeartbeatResult
import dev.stent.store.HeldLease
import dev.stent.store.LeaseLostException
import dev.stent.store.NewRun
import dev.stent.store.RunQuery
import dev.stent.store.RunRecord
import dev.stent.store.StepKind
import dev.stent.store.StepRecord
import dev.stent.store.StepStatus
import dev.stent.store.UnloadOutcome
import dev.stent.store.WakeUpSink
import dev.stent.store.WorkerRecord
import dev.stent.store.WorkflowStore
import dev.stent.store.WriteOutcome
import kotlinx.serialization.builtins.ListSerializer
import kotlinx.serialization.builtins.serializer
import kotlinx.serialization.json.Json
import org.jetbrains.exposed.v1.core.ResultRow
import org.jetbrains.exposed.v1.core.SortOrder
import org.jetbrains.exposed.v1.core.eq
import org.jetbrains.exposed.v1.jdbc.Database
import org.jetbrains.exposed.v1.jdbc.andWhere
import org.jetbrains.exposed.v1.jdbc.selectAll
import org.jetbrains.exposed.v1.jdbc.transactions.transaction
import java.sql.Connection
import java.sql.ResultSet

/**
 * The [WorkflowStore] on Exposed and JDBC, for SQLite and PostgreSQL. Each method is one
 * transaction; hot-path statements are SQL written out per dialect so each is one round trip.
 */
internal class ExposedStore(
    /** For single-statement writes on the hot path: one autocommit statement, one round trip. */
    private val dataSource: javax.sql.DataSource,
    private val db: Database,
    private val dialect: SqlDialect,
    override val maxConnections: Int,
    /** The channel wake-ups are sent on (PostgreSQL), specific to the schema. */
    private val channel: String,
    /** Opens the dedicated connection that LISTENs for wake-ups (PostgreSQL). */
    private val listenConnection: (() -> Connection)?,
    private val onClose: () -> Unit,
) : WorkflowStore {
    private val now = dialect.now

    /** Prepared statements kept per SQLite connection (PostgreSQL's driver keeps its own). */
    private val sqliteStatements = SqliteStatements()

    /** Sends wake-ups to other processes, coalesced, after the commit that they announce (PostgreSQL). */
    private val sender: PgNotifySender? = if (listenConnection != null) PgNotifySender(dataSource, channel) else null

    /**
     * The insert of new runs from a `v` table of (id, workflow, input, queue, priority, delay_ms, deadline_at,
     * timeout_ms): the deadline is absolute or relative to now, and a run becomes ready at the earlier of its
     * delay and its deadline (a run whose deadline passes before its delay is cancelled then).
     */
    private val insertRuns = """INSERT INTO stent_runs (id, workflow, status, input, queue, priority, ready_at, deadline_at,
               lease_token, claim_count, cancel_requested, created_at, updated_at)
           SELECT id, workflow, 'PENDING', input, queue, priority,
               CASE WHEN COALESCE(deadline_at, $now + timeout_ms) < $now + delay_ms
                    THEN COALESCE(deadline_at, $now + timeout_ms) ELSE $now + delay_ms END,
               COALESCE(deadline_at, $now + timeout_ms), 0, 0, FALSE, $now, $now"""

    /** Announces a committed change to the other processes on this database; call it after the commit. */
    private fun wake(kind: Char, runId: String = "") {
        sender?.send("$kind:$runId")
    }

    override val deliversWakeUps: Boolean get() = listenConnection != null

    override fun startWakeUps(sink: WakeUpSink): AutoCloseable =
        listenConnection?.let { PgWakeUps(it, channel, sink) } ?: AutoCloseable {}

    private fun <T> tx(block: Connection.() -> T): T = transaction(db) { (connection.connection as Connection).block() }

    /** Runs [block] on a pooled connection in autocommit mode: each statement is its own transaction. */
    private fun <T> autocommit(block: Connection.() -> T): T = dataSource.connection.use { c ->
        check(c.autoCommit) { "Stent's pool must hand out connections in autocommit mode" }
        when (dialect) {
            SqlDialect.Sqlite -> sqliteStatements.wrap(c).block()
            SqlDialect.Postgres -> c.block()
        }
    }

    override fun dbNowMs(): Long = tx { nowMs() }

    private fun Connection.nowMs(): Long = query("SELECT $now AS now", emptyList()) { it.getLong("now") }.single()

    // One autocommit statement when the id is new (the common case).
    override fun createRun(run: NewRun): CreateRunResult = autocommit {
        val inserted = query(
            """WITH v (id, workflow, input, queue, priority, delay_ms, deadline_at, timeout_ms) AS
                 (VALUES (CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER),
                          CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT)))
               $insertRuns FROM v WHERE TRUE
               ON CONFLICT (id) DO NOTHING RETURNING id""",
            listOf<Any?>(run.id, run.workflow, run.input, run.queue, run.priority, run.delayMs, run.deadlineAtMs, run.timeoutMs),
        ) { true }.isNotEmpty()
        if (inserted) wake(WORK)
        if (inserted) CreateRunResult(true, run.workflow)
        else CreateRunResult(false, query("SELECT workflow FROM stent_runs WHERE id = ?", listOf(run.id)) { it.getString(1) }.single())
    }

    // One statement for a group of starts: a multi-row insert that skips ids that exist.
    override fun createRuns(runs: List<NewRun>): List<CreateRunResult> {
        if (runs.size == 1) return listOf(createRun(runs.single()))
        val first = runs.distinctBy { it.id }
        val inserted = autocommit {
            val (v, vArgs) = groupTable(
                listOf(
                    "id" to "TEXT", "workflow" to "TEXT", "input" to "TEXT", "queue" to "TEXT", "priority" to "INTEGER",
                    "delay_ms" to "BIGINT", "deadline_at" to "BIGINT", "timeout_ms" to "BIGINT",
                ),
                first.map { listOf(it.id, it.workflow, it.input, it.queue, it.priority, it.delayMs, it.deadlineAtMs, it.timeoutMs) },
            )
            query(
                """$v
                   $insertRuns FROM v WHERE TRUE
                   ON CONFLICT (id) DO NOTHING RETURNING id""",
                vArgs,
            ) { it.getString(1) }.toHashSet()
        }
        // announced before anything else can fail: the runs exist now
        if (inserted.isNotEmpty()) wake(WORK)
        val existing = runs.map { it.id }.filter { it !in inserted }.toSet()
        val workflows = if (existing.isEmpty()) emptyMap() else autocommit {
            val (ids, idArgs) = inList("id", existing)
            query("SELECT id, workflow FROM stent_runs WHERE $ids", idArgs) { it.getString(1) to it.getString(2) }.toMap()
        }
        val seen = HashSet<String>()
        return runs.map { run ->
            val created = run.id in inserted && seen.add(run.id)
            // a later duplicate in the group sees the run its first occurrence created
            CreateRunResult(created, if (run.id in inserted) first.first { it.id == run.id }.workflow else workflows.getValue(run.id))
        }
    }

    // The claim is one statement (atomic by itself); the records are read after it, under the new lease.
    override fun claim(request: ClaimRequest): ClaimResult = autocommit {
        val names = request.workflows.toList()
        val queues = request.queues.toList()
        // names and queues filter in SQL, so runs this worker cannot execute never block the ones it can
        val filter = "workflow IN (${marks(names.size)})" + if (queues.isEmpty()) "" else " AND queue IN (${marks(queues.size)})"
        val filterArgs = names + queues
        // Two candidate sets, each walking its partial index: runs whose lease expired (recovery, taken first),
        // then ready runs, highest priority first and then longest ready.
        val expired = "SELECT id, 0 AS pass, priority, lease_expires_at AS since FROM stent_runs WHERE status = 'RUNNING' AND lease_expires_at < $now AND $filter"
        val ready = "SELECT id, 1 AS pass, priority, ready_at AS since FROM stent_runs WHERE status IN ('PENDING', 'WAITING') AND ready_at <= $now AND $filter"
        val set = """SET status = 'RUNNING', lease_owner = ?, lease_token = lease_token + 1,
                   lease_expires_at = $now + ?, claim_count = claim_count + 1, started_at = COALESCE(started_at, $now),
                   updated_at = $now, ready_at = NULL, wait_signals = NULL"""
        val returning = "RETURNING stent_runs.id, workflow, input, lease_token, claim_count, cancel_requested, deadline_at, $now AS now"
        val (sql, args) = when (dialect) {
            // MATERIALIZED CTEs lock and pick the candidates once (`id IN (subquery)` may be re-run under
            // concurrency and update more rows than the limit); the ready set fills what the expired set left.
            SqlDialect.Postgres -> """WITH e AS MATERIALIZED ($expired ORDER BY priority DESC, since LIMIT ? FOR UPDATE SKIP LOCKED),
                     r AS MATERIALIZED ($ready ORDER BY priority DESC, since LIMIT (? - (SELECT COUNT(*) FROM e)) FOR UPDATE SKIP LOCKED)
               UPDATE stent_runs $set FROM (SELECT id FROM e UNION ALL SELECT id FROM r) c WHERE stent_runs.id = c.id
               $returning""" to
                filterArgs + request.limit + filterArgs + request.limit + request.workerId + request.leaseMs
            // BEGIN IMMEDIATE already serializes writers: one ordered pick over both sets
            SqlDialect.Sqlite -> """UPDATE stent_runs $set WHERE id IN (
                   SELECT id FROM (SELECT * FROM ($expired ORDER BY priority DESC, since LIMIT ?)
                                   UNION ALL SELECT * FROM ($ready ORDER BY priority DESC, since LIMIT ?))
                   ORDER BY pass LIMIT ?)
               $returning""" to
                listOf<Any?>(request.workerId, request.leaseMs) + filterArgs + request.limit + filterArgs + request.limit + request.limit
        }
        var dbNow: Long? = null
        val claimed = query(sql, args) { rs ->
            dbNow = rs.getLong("now")
            ClaimRow(
                rs.getString("id"), rs.getString("workflow"), rs.getString("input"), rs.getLong("lease_token"), rs.getInt("claim_count"),
                rs.getBoolean("cancel_requested"), rs.longOrNull("deadline_at"),
            )
        }
        // a run's first claim takes token 1 (tokens start at 0 and only grow); before it, nothing could write a record
        val resumed = claimed.filter { it.token > 1 }.map { it.id }
        val records = if (resumed.isEmpty()) emptyMap() else try {
            val (ids, idArgs) = inList("run_id", resumed)
            query(
                "SELECT * FROM stent_steps WHERE $ids ORDER BY created_at",
                idArgs,
            ) { rs -> rs.getString("run_id") to stepRecord(rs) }.groupBy({ it.first }, { it.second })
        } catch (e: Exception) {
            // the claim committed: give the runs back (with a back-off, counted toward the poison guard) before failing
            // (on this connection: the pool may have no other)
            for (run in claimed) runCatching { releaseIn(run.id, run.token, CLAIM_READ_BACKOFF_MS) }.onFailure { e.addSuppressed(it) }
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
                ClaimedRun(it.id, it.workflow, it.input, it.token, it.claimCount, records[it.id].orEmpty(), it.cancelRequested, it.deadlineAt)
            },
            dbNow ?: nowMs(),
            nextReadyAt,
        )
    }

    private class ClaimRow(
        val id: String, val workflow: String, val input: String, val token: Long, val claimCount: Int,
        val cancelRequested: Boolean, val deadlineAt: Long?,
    )

    // One statement, fenced inside itself: no transaction round trips around it.
    override fun checkpoint(runId: String, token: Long, record: StepRecord): WriteOutcome = autocommit {
        if (upsertStep(runId, token, record) == 1) WriteOutcome.OK
        else if (holdsLease(runId, token)) WriteOutcome.OK // a final record was there already; it stays
        else WriteOutcome.LEASE_LOST
    }

    // One statement for a group of checkpoints of different runs, each fenced by its own token.
    override fun checkpoints(writes: List<CheckpointWrite>): List<WriteOutcome> {
        if (writes.size == 1) return writes.map { checkpoint(it.runId, it.token, it.record) }
        require(writes.map { it.runId }.toSet().size == writes.size) { "a group of checkpoints has at most one per run" }
        return autocommit {
            val (v, vArgs) = groupTable(
                listOf(
                    "run_id" to "TEXT", "token" to "BIGINT", "step_id" to "TEXT", "kind" to "TEXT", "status" to "TEXT",
                    "result" to "TEXT", "failure" to "TEXT", "attempts" to "INTEGER", "wake_at" to "BIGINT",
                ),
                writes.inLockOrder { it.runId }.map { w ->
                    val r = w.record
                    listOf(w.runId, w.token, r.stepId, r.kind.name, r.status.name, r.result, r.failure, r.attempts, r.wakeAt)
                },
            )
            val written = query(
                """$v
                   INSERT INTO stent_steps (run_id, step_id, kind, status, result, failure, attempts, wake_at, created_at, updated_at)
                   SELECT run_id, step_id, kind, status, result, failure, attempts, wake_at, $now, $now FROM v
                   WHERE EXISTS (SELECT 1 FROM stent_runs r WHERE r.id = v.run_id AND r.lease_token = v.token AND r.status = 'RUNNING' ${dialect.shareLock})
                   $UPSERT_STEP
                   RETURNING run_id""",
                vArgs,
            ) { it.getString(1) }.toHashSet()
            // not written: a final record was there already (it stays), or the lease is gone
            writes.map { if (it.runId in written || holdsLease(it.runId, it.token)) WriteOutcome.OK else WriteOutcome.LEASE_LOST }
        }
    }

    /** Inserts or updates a record if [token] holds the lease; a final record is never overwritten. */
    private fun Connection.upsertStep(runId: String, token: Long, r: StepRecord): Int = update(
        """INSERT INTO stent_steps (run_id, step_id, kind, status, result, failure, attempts, wake_at, created_at, updated_at)
           SELECT ?, ?, ?, ?, CAST(? AS TEXT), CAST(? AS TEXT), ?, CAST(? AS BIGINT), $now, $now
           WHERE EXISTS (SELECT 1 FROM stent_runs WHERE id = ? AND lease_token = ? AND status = 'RUNNING' ${dialect.shareLock})
           $UPSERT_STEP""",
        listOf(runId, r.stepId, r.kind.name, r.status.name, r.result, r.failure, r.attempts, r.wakeAt, runId, token),
    )

    private fun Connection.holdsLease(runId: String, token: Long): Boolean = query(
        "SELECT 1 FROM stent_runs WHERE id = ? AND lease_token = ? AND status = 'RUNNING' ${dialect.rowLock}",
        listOf(runId, token),
    ) { true }.isNotEmpty()

    override fun consumeSignal(runId: String, token: Long, name: String, stepId: String): StepRecord? = tx {
        if (!holdsLease(runId, token)) throw LeaseLostException(runId)
        val signal = query(
            """SELECT seq, payload FROM stent_signals WHERE run_id = ? AND name = ? AND consumed_by IS NULL
               ORDER BY seq LIMIT 1 ${dialect.rowLock}""",
            listOf(runId, name),
        ) { it.getLong("seq") to it.getString("payload") }.firstOrNull() ?: return@tx null
        update("UPDATE stent_signals SET consumed_by = ?, consumed_at = $now WHERE seq = ?", listOf(stepId, signal.first))
        val record = StepRecord(stepId, StepKind.SIGNAL, StepStatus.COMPLETED, result = signal.second)
        check(upsertStep(runId, token, record) == 1) { "signal wait '$stepId' of run '$runId' was already final" }
        record
    }

    override fun unload(runId: String, token: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome = tx {
        unloadIn(runId, token, wakeAtMs, signalNames)
    }.also {
        when (it) {
            UnloadOutcome.READY -> wake(WORK)
            UnloadOutcome.CANCELLED -> wake(FINISHED, runId)
            else -> Unit
        }
    }

    private fun Connection.unloadIn(runId: String, token: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome {
        val cancel = query(
            "SELECT cancel_requested FROM stent_runs WHERE id = ? AND lease_token = ? AND status = 'RUNNING' ${dialect.rowLock}",
            listOf(runId, token),
        ) { it.getBoolean("cancel_requested") }.firstOrNull() ?: return UnloadOutcome.LEASE_LOST
        if (cancel) {
            finishIn(runId, token, RunStatus.CANCELLED, null, null)
            return UnloadOutcome.CANCELLED
        }
        val signalled = signalNames.isNotEmpty() && query(
            "SELECT 1 FROM stent_signals WHERE run_id = ? AND consumed_by IS NULL AND name IN (${marks(signalNames.size)}) LIMIT 1",
            listOf(runId) + signalNames,
        ) { true }.isNotEmpty()
        return if (signalled) {
            update(
                """UPDATE stent_runs SET status = 'PENDING', ready_at = $now, lease_owner = NULL, lease_expires_at = NULL,
                       claim_count = 0, updated_at = $now WHERE id = ? AND lease_token = ?""",
                listOf(runId, token),
            )
            UnloadOutcome.READY
        } else {
            update(
                """UPDATE stent_runs SET status = 'WAITING', ready_at = CAST(? AS BIGINT), wait_signals = CAST(? AS TEXT),
                       lease_owner = NULL, lease_expires_at = NULL, claim_count = 0, updated_at = $now
                   WHERE id = ? AND lease_token = ?""",
                listOf(wakeAtMs, if (signalNames.isEmpty()) null else namesJson.encodeToString(namesSerializer, signalNames.toList()), runId, token),
            )
            UnloadOutcome.WAITING
        }
    }

    override fun finish(runId: String, token: Long, status: RunStatus, output: String?, failure: String?): WriteOutcome =
        autocommit { finishIn(runId, token, status, output, failure) }.also { if (it == WriteOutcome.OK) wake(FINISHED, runId) }

    // One statement for a group of finishes, each fenced by its own token.
    override fun finishes(writes: List<FinishWrite>): List<WriteOutcome> {
        if (writes.size == 1) return writes.map { finish(it.runId, it.token, it.status, it.output, it.failure) }
        require(writes.map { it.runId }.toSet().size == writes.size) { "a group of finishes has at most one per run" }
        writes.forEach { require(it.status.isTerminal) { "finish needs a final status, not ${it.status}" } }
        val finished = autocommit {
            val (v, vArgs) = groupTable(
                listOf("id" to "TEXT", "token" to "BIGINT", "status" to "TEXT", "output" to "TEXT", "failure" to "TEXT"),
                writes.inLockOrder { it.runId }.map { listOf(it.runId, it.token, it.status.name, it.output, it.failure) },
            )
            // PostgreSQL: lock the rows in id order first (as the heartbeat and the other group writes do), since the
            // plan of UPDATE … FROM may visit them in any order, and two statements locking in other orders can deadlock
            val locked = when (dialect) {
                SqlDialect.Postgres -> """, l AS (SELECT id FROM stent_runs WHERE id IN (SELECT id FROM v) ORDER BY id COLLATE "C" FOR UPDATE)"""
                SqlDialect.Sqlite -> ""
            }
            val lockedJoin = if (locked.isEmpty()) "" else " AND stent_runs.id IN (SELECT id FROM l)"
            query(
                """$v$locked
                   UPDATE stent_runs SET status = v.status, output = v.output, failure = v.failure, completed_at = $now,
                       updated_at = $now, lease_owner = NULL, lease_expires_at = NULL, ready_at = NULL, wait_signals = NULL
                   FROM v WHERE stent_runs.id = v.id AND stent_runs.lease_token = v.token AND stent_runs.status = 'RUNNING'$lockedJoin
                   RETURNING ${dialect.updatedId}""",
                vArgs,
            ) { it.getString(1) }.toHashSet()
        }
        finished.forEach { wake(FINISHED, it) }
        return writes.map { if (it.runId in finished) WriteOutcome.OK else WriteOutcome.LEASE_LOST }
    }

    private fun Connection.finishIn(runId: String, token: Long, status: RunStatus, output: String?, failure: String?): WriteOutcome {
        require(status.isTerminal) { "finish needs a final status, not $status" }
        val n = update(
            """UPDATE stent_runs SET status = ?, output = CAST(? AS TEXT), failure = CAST(? AS TEXT), completed_at = $now,
                   updated_at = $now, lease_owner = NULL, lease_expires_at = NULL, ready_at = NULL, wait_signals = NULL
               WHERE id = ? AND lease_token = ? AND status = 'RUNNING'""",
            listOf(status.name, output, failure, runId, token),
        )
        return if (n == 1) WriteOutcome.OK else WriteOutcome.LEASE_LOST
    }

    override fun release(runId: String, token: Long, retryAfterMs: Long?): WriteOutcome =
        autocommit { releaseIn(runId, token, retryAfterMs) }.also { if (it == WriteOutcome.OK && retryAfterMs == null) wake(WORK) }

    private fun Connection.releaseIn(runId: String, token: Long, retryAfterMs: Long?): WriteOutcome {
        val n = if (retryAfterMs == null) {
            update(
                """UPDATE stent_runs SET status = 'PENDING', ready_at = $now, lease_owner = NULL, lease_expires_at = NULL,
                       claim_count = 0, updated_at = $now WHERE id = ? AND lease_token = ? AND status = 'RUNNING'""",
                listOf(runId, token),
            )
        } else {
            // not a clean release: the claim count stays, so a run whose writes keep failing trips the poison guard
            update(
                """UPDATE stent_runs SET status = 'PENDING', ready_at = $now + ?, lease_owner = NULL, lease_expires_at = NULL,
                       updated_at = $now WHERE id = ? AND lease_token = ? AND status = 'RUNNING'""",
                listOf(retryAfterMs, runId, token),
            )
        }
        return if (n == 1) WriteOutcome.OK else WriteOutcome.LEASE_LOST
    }

    override fun heartbeat(workerId: String, runIds: Collection<String>, leaseMs: Long): HeartbeatResult = tx {
        val (ids, idArgs) = inList("id", runIds)
        val sql = when (dialect) {
            // rows locked in id order, as group writes lock them, so a heartbeat and a group never deadlock
            SqlDialect.Postgres -> """WITH l AS (SELECT id FROM stent_runs WHERE lease_owner = ? AND status = 'RUNNING' AND $ids
                                       ORDER BY id COLLATE "C" FOR UPDATE)
                   UPDATE stent_runs SET lease_expires_at = $now + ? FROM l WHERE stent_runs.id = l.id
                   RETURNING stent_runs.id, lease_token, cancel_requested"""
            SqlDialect.Sqlite -> """UPDATE stent_runs SET lease_expires_at = $now + ? WHERE lease_owner = ? AND status = 'RUNNING' AND $ids
                   RETURNING id, lease_token, cancel_requested"""
        }
        val args = when (dialect) {
            SqlDialect.Postgres -> listOf<Any?>(workerId) + idArgs + leaseMs
            SqlDialect.Sqlite -> listOf<Any?>(leaseMs, workerId) + idArgs
        }
        val leases = if (runIds.isEmpty()) emptyList() else query(sql, args) { HeldLease(it.getString("id"), it.getLong("lease_token"), it.getBoolean("cancel_requested")) }
        update("UPDATE stent_workers SET last_seen_at = $now WHERE id = ?", listOf(workerId))
        HeartbeatResult(leases, nowMs())
    }

    override fun registerWorker(worker: WorkerRecord) = tx {
        // workers that stopped or vanished days ago are forgotten here, so the table stays small
        update("DELETE FROM stent_workers WHERE last_seen_at < $now - ?", listOf(FORGET_WORKERS_AFTER_MS))
        val queues = worker.queues?.let { namesJson.encodeToString(namesSerializer, it) }
        val args = listOf<Any?>(worker.id, namesJson.encodeToString(namesSerializer, worker.workflows), queues, worker.leaseMs)
        if (update("UPDATE stent_workers SET workflows = ?, queues = CAST(? AS TEXT), lease_ms = ?, started_at = $now, last_seen_at = $now, stopped_at = NULL WHERE id = ?",
                args.drop(1) + worker.id) == 0
        ) {
            update(
                """INSERT INTO stent_workers (id, workflows, queues, lease_ms, started_at, last_seen_at)
                   VALUES (?, ?, CAST(? AS TEXT), ?, $now, $now)""",
                args,
            )
        }
    }

    override fun deregisterWorker(workerId: String) {
        autocommit { update("UPDATE stent_workers SET stopped_at = $now, last_seen_at = $now WHERE id = ?", listOf(workerId)) }
    }

    override fun listWorkers(): List<WorkerRecord> = autocommit {
        query("SELECT * FROM stent_workers", emptyList()) { rs ->
            WorkerRecord(
                rs.getString("id"), namesJson.decodeFromString(namesSerializer, rs.getString("workflows")),
                rs.getString("queues")?.let { namesJson.decodeFromString(namesSerializer, it) }, rs.getLong("lease_ms"),
                rs.getLong("started_at"), rs.getLong("last_seen_at"), rs.longOrNull("stopped_at"),
            )
        }
    }

    override fun sendSignal(runId: String, name: String, payload: String) = tx {
        val run = query(
            "SELECT status, wait_signals FROM stent_runs WHERE id = ? ${dialect.rowLock}",
            listOf(runId),
        ) { RunStatus.valueOf(it.getString("status")) to it.getString("wait_signals") }.firstOrNull()
            ?: throw UnknownRunException(runId, "cannot send signal '$name': the run was never started in this database; check the id")
        if (run.first.isTerminal) {
            throw UnknownRunException(runId, "cannot send signal '$name': the run has finished (${run.first}); signals go only to runs that are not finished")
        }
        update(
            "INSERT INTO stent_signals (run_id, name, payload, created_at) VALUES (?, ?, ?, $now)",
            listOf(runId, name, payload),
        )
        val waitsForIt = run.second?.let { namesJson.decodeFromString(namesSerializer, it) }?.contains(name) == true
        if (run.first == RunStatus.WAITING && waitsForIt) {
            update(
                "UPDATE stent_runs SET status = 'PENDING', ready_at = $now, updated_at = $now WHERE id = ? AND status = 'WAITING'",
                listOf(runId),
            )
        }
    }.also { wake(SIGNAL, runId) } // a signal wake-up also tells workers there may be work

    override fun requestCancel(runId: String): RunStatus? {
        var announce: Char? = null
        val result = tx {
            val status = query("SELECT status FROM stent_runs WHERE id = ? ${dialect.rowLock}", listOf(runId)) {
                RunStatus.valueOf(it.getString("status"))
            }.firstOrNull() ?: return@tx null
            when (status) {
                RunStatus.PENDING, RunStatus.WAITING -> {
                    update(
                        """UPDATE stent_runs SET status = 'CANCELLED', completed_at = $now, updated_at = $now, ready_at = NULL,
                               wait_signals = NULL WHERE id = ?""",
                        listOf(runId),
                    )
                    announce = FINISHED
                    RunStatus.CANCELLED
                }
                RunStatus.RUNNING -> {
                    update("UPDATE stent_runs SET cancel_requested = TRUE, updated_at = $now WHERE id = ?", listOf(runId))
                    announce = CANCEL
                    RunStatus.RUNNING
                }
                else -> status
            }
        }
        announce?.let { wake(it, runId) }
        return result
    }

    // One autocommit SELECT: await() calls this for every run it waits for.
    override fun getRun(runId: String): RunRecord? = autocommit {
        query("SELECT * FROM stent_runs WHERE id = ?", listOf(runId), ::runRecord).singleOrNull()
    }

    override fun getRuns(runIds: Collection<String>): List<RunRecord> = if (runIds.isEmpty()) emptyList() else autocommit {
        val (ids, idArgs) = inList("id", runIds)
        query("SELECT * FROM stent_runs WHERE $ids", idArgs, ::runRecord)
    }

    override fun listSteps(runId: String): List<StepRecord> = transaction(db) {
        StepsTable.selectAll().where { StepsTable.runId eq runId }
            .orderBy(StepsTable.createdAt to SortOrder.ASC, StepsTable.stepId to SortOrder.ASC)
            .map(::stepRecord)
    }

    override fun listRuns(query: RunQuery): List<RunRecord> = transaction(db) {
        RunsTable.selectAll()
            .apply {
                query.status?.let { s -> andWhere { RunsTable.status eq s.name } }
                query.workflow?.let { w -> andWhere { RunsTable.workflow eq w } }
            }
            .orderBy(RunsTable.createdAt to SortOrder.DESC, RunsTable.id to SortOrder.DESC)
            .limit(query.limit).offset(query.offset.toLong())
            .map(::runRecord)
    }

    override fun close() {
        sender?.close()
        onClose()
    }

    private fun runRecord(rs: ResultSet) = RunRecord(
        rs.getString("id"), rs.getString("workflow"), RunStatus.valueOf(rs.getString("status")), rs.getString("input"),
        rs.getString("output"), rs.getString("failure"), rs.getString("queue"), rs.getInt("priority"), rs.getLong("created_at"),
        rs.longOrNull("started_at"), rs.getLong("updated_at"), rs.longOrNull("completed_at"), rs.longOrNull("ready_at"),
        rs.getInt("claim_count"), rs.getString("lease_owner"), rs.longOrNull("lease_expires_at"), rs.getBoolean("cancel_requested"),
        rs.longOrNull("deadline_at"),
    )

    private fun runRecord(r: ResultRow) = RunRecord(
        r[RunsTable.id], r[RunsTable.workflow], RunStatus.valueOf(r[RunsTable.status]), r[RunsTable.input],
        r[RunsTable.output], r[RunsTable.failure], r[RunsTable.queue], r[RunsTable.priority], r[RunsTable.createdAt],
        r[RunsTable.startedAt], r[RunsTable.updatedAt], r[RunsTable.completedAt], r[RunsTable.readyAt],
        r[RunsTable.claimCount], r[RunsTable.leaseOwner], r[RunsTable.leaseExpiresAt], r[RunsTable.cancelRequested],
        r[RunsTable.deadlineAt],
    )

    private fun stepRecord(r: ResultRow) = StepRecord(
        r[StepsTable.stepId], StepKind.valueOf(r[StepsTable.kind]), StepStatus.valueOf(r[StepsTable.status]),
        r[StepsTable.result], r[StepsTable.failure], r[StepsTable.attempts], r[StepsTable.wakeAt], r[StepsTable.updatedAt],
    )

    private fun stepRecord(rs: ResultSet) = StepRecord(
        rs.getString("step_id"), StepKind.valueOf(rs.getString("kind")), StepStatus.valueOf(rs.getString("status")),
        rs.getString("result"), rs.getString("failure"), rs.getInt("attempts"), rs.longOrNull("wake_at"), rs.getLong("updated_at"),
    )

    /**
     * `WITH v (columns) AS (…)` over [rows], and its arguments. PostgreSQL gets one array per column and
     * `unnest`, so the statement's text, and the prepared statement the driver caches for it, is the same
     * for any number of rows; SQLite gets a `VALUES` list of typed placeholders.
     */
    private fun Connection.groupTable(columns: List<Pair<String, String>>, rows: List<List<Any?>>): Pair<String, List<Any?>> {
        val names = columns.joinToString(", ") { it.first }
        return when (dialect) {
            SqlDialect.Postgres -> {
                val arrays = columns.mapIndexed { i, (_, type) ->
                    createArrayOf(type.lowercase(), Array(rows.size) { r -> rows[r][i] })
                }
                "WITH v AS (SELECT * FROM unnest(${columns.joinToString(", ") { "CAST(? AS ${it.second}[])" }}) AS t ($names))" to arrays
            }
            SqlDialect.Sqlite -> {
                val row = columns.joinToString(", ", "(", ")") { "CAST(? AS ${it.second})" }
                "WITH v ($names) AS (VALUES ${List(rows.size) { row }.joinToString(", ")})" to rows.flatten()
            }
        }
    }

    /**
     * Rows of a group write in the order PostgreSQL's heartbeat locks runs (`COLLATE "C"`: by UTF-8
     * bytes). A group statement locks its runs' rows in the order of its rows, so every multi-row lock
     * in Stent goes the same way and two of them never wait on each other in a cycle.
     */
    private fun <T> List<T>.inLockOrder(id: (T) -> String): List<T> =
        sortedWith { a, b -> java.util.Arrays.compareUnsigned(id(a).toByteArray(), id(b).toByteArray()) }

    /** `column IN (…)` for [values]: `= ANY(?)` with one array on PostgreSQL, so the statement's text does not vary. */
    private fun Connection.inList(column: String, values: Collection<String>): Pair<String, List<Any?>> = when (dialect) {
        SqlDialect.Postgres -> "$column = ANY(?)" to listOf(createArrayOf("text", values.toTypedArray()))
        SqlDialect.Sqlite -> "$column IN (${marks(values.size)})" to values.toList()
    }

    internal companion object {
        /** A record is updated in place until it is final; a final record is never overwritten. */
        private const val UPSERT_STEP = """ON CONFLICT (run_id, step_id) DO UPDATE SET status = excluded.status, result = excluded.result,
               failure = excluded.failure, attempts = excluded.attempts, wake_at = excluded.wake_at, updated_at = excluded.updated_at
           WHERE stent_steps.status NOT IN ('COMPLETED', 'FAILED', 'TIMED_OUT')"""

        /** After a claim whose read of records failed, its runs are claimable again after this. */
        private const val CLAIM_READ_BACKOFF_MS = 1_000L

        /** Worker registrations not seen for this long are deleted. */
        private const val FORGET_WORKERS_AFTER_MS = 7L * 86_400_000L

        const val WORK = 'w'
        const val FINISHED = 'f'
        const val SIGNAL = 's'
        const val CANCEL = 'c'
        val namesJson = Json
        val namesSerializer = ListSerializer(String.serializer())
    }
}
