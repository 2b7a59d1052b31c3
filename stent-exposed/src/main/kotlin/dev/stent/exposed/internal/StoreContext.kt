package dev.stent.exposed.internal

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.store.RunRecord
import dev.stent.store.StoredRecord
import dev.stent.store.UnloadOutcome
import dev.stent.store.WriteOutcome
import kotlinx.serialization.builtins.ListSerializer
import kotlinx.serialization.builtins.serializer
import kotlinx.serialization.json.Json
import org.jetbrains.exposed.v1.core.ResultRow
import org.jetbrains.exposed.v1.jdbc.Database
import org.jetbrains.exposed.v1.jdbc.transactions.transaction
import java.sql.Connection
import java.sql.ResultSet

/**
 * What every operation of [ExposedStore] shares: the connections (one autocommit statement on a
 * pooled connection, or an Exposed transaction), the dialect's clock, the row-level statements more
 * than one operation runs (upsert a record, check a lease, finish, release, unload a run), row
 * mapping, the SQL that binds lists of rows per dialect, and the wake-up sender. The operations
 * themselves are extension functions on it, one file per concern: `Starts.kt`, `Claims.kt`,
 * `Records.kt`, `Outcomes.kt`, `Reads.kt`, `WorkerRegistry.kt`.
 */
internal class StoreContext(
    /** For single-statement writes on the hot path: one autocommit statement, one round trip. */
    internal val dataSource: javax.sql.DataSource,
    internal val db: Database,
    internal val dialect: SqlDialect,
    /** The channel wake-ups are sent on (PostgreSQL), specific to the schema. */
    channel: String,
    sendsWakeUps: Boolean,
) {
    internal val now = dialect.now

    /** Prepared statements kept per SQLite connection (PostgreSQL's driver keeps its own). */
    internal val sqliteStatements = SqliteStatements()

    /** Sends wake-ups to other processes, coalesced, after the commit that they announce (PostgreSQL). */
    internal val sender: PgNotifySender? = if (sendsWakeUps) PgNotifySender(dataSource, channel) else null

    /**
     * Without a channel to other processes (SQLite), wake-ups still reach this process: a cancel that
     * reaches a whole tree of children, or a child's end, wakes what waits here at once.
     */
    @Volatile
    internal var localSink: dev.stent.store.WakeUpSink? = null

    /**
     * The insert of new runs from a `v` table of (id, workflow_name, input, queue, priority, delay_ms, deadline_at,
     * timeout_ms, parent_id, parent_call, detached, partition_key, trace_context, lease_owner, lease_ms): the deadline
     * is absolute or relative to now, and a run becomes ready at the earlier of its delay and its deadline (a run
     * whose deadline passes before its delay is cancelled then). A run with a `lease_owner`
     * ([dev.stent.store.NewRun.claimFor]) is inserted RUNNING under its first lease instead, unless its queue has
     * limits (limits live in the claim: it is left PENDING). Followed by `ON CONFLICT`, then [insertedRuns].
     */
    internal val insertRuns = """INSERT INTO stent_runs (id, workflow_name, status, input, queue, priority, ready_at, deadline_at,
               fencing_token, claim_count, cancel_requested, created_at, updated_at, parent_id, parent_call, detached, partition_key,
               trace_context, lease_owner, lease_expires_at, started_at)
           SELECT id, workflow_name, CASE WHEN direct = 1 THEN 'RUNNING' ELSE 'PENDING' END, input, queue, priority,
               CASE WHEN direct = 1 THEN NULL
                    WHEN COALESCE(deadline_at, $now + timeout_ms) < $now + delay_ms THEN COALESCE(deadline_at, $now + timeout_ms)
                    ELSE $now + delay_ms END,
               COALESCE(deadline_at, $now + timeout_ms), direct, direct, FALSE, $now, $now, parent_id, parent_call, detached, partition_key,
               trace_context, CASE WHEN direct = 1 THEN lease_owner END, CASE WHEN direct = 1 THEN $now + lease_ms END,
               CASE WHEN direct = 1 THEN $now END
           FROM (SELECT v.*, CASE WHEN lease_owner IS NOT NULL AND queue NOT IN (SELECT name FROM stent_queues) THEN 1 ELSE 0 END AS direct
                 FROM v) v
           WHERE TRUE"""

    /** What [insertRuns] returns per row inserted: read by `insertedRun`. */
    internal val insertedRuns = "RETURNING id, status, fencing_token, deadline_at, started_at"

    /** When this process last read which queues have limits (System.nanoTime), and their names; see `limitedQueues`. */
    @Volatile
    internal var queueLimitsCache: Pair<Long, Map<String, dev.stent.store.QueueLimitsRecord>>? = null

    /** Bumped by every change of limits made through this process, so a read begun before it is not cached. */
    internal val queueLimitsGeneration = java.util.concurrent.atomic.AtomicLong()

    /** Announces a committed change to the other processes on this database; call it after the commit. */
    internal fun wake(message: WakeUpMessage, runId: String = "") {
        if (sender != null) {
            sender.send(message.payload(runId))
        } else {
            // a hint after the commit: whatever the sink does, the write it announces stays done
            localSink?.let { sink -> runCatching { WakeUpMessage.dispatch(message.payload(runId), sink) } }
        }
    }

    /** Sends what is queued and stops the sender. */
    fun close() {
        sender?.close()
    }

    internal fun <T> tx(block: Connection.() -> T): T = transaction(db) { (connection.connection as Connection).block() }

    /**
     * Runs [block] in one transaction on a pooled connection, with plain JDBC: no round trips beyond the
     * statements and the commit (the pool sets the isolation level once per connection; SQLite's driver begins
     * `IMMEDIATE`). For the hot path; the rest uses [tx].
     */
    internal fun <T> jdbcTx(block: Connection.() -> T): T = dataSource.connection.use { c ->
        c.autoCommit = false
        try {
            val out = when (dialect) {
                is SqliteDialect -> sqliteStatements.wrap(c).block()
                is PostgresDialect -> c.block()
            }
            c.commit()
            out
        } catch (e: Throwable) {
            try {
                c.rollback()
            } catch (r: java.sql.SQLException) {
                e.addSuppressed(r)
            }
            throw e
        } finally {
            c.autoCommit = true
        }
    }

    /** Runs [block] on a pooled connection in autocommit mode: each statement is its own transaction. */
    internal fun <T> autocommit(block: Connection.() -> T): T = dataSource.connection.use { c ->
        check(c.autoCommit) { "Stent's pool must hand out connections in autocommit mode" }
        when (dialect) {
            is SqliteDialect -> sqliteStatements.wrap(c).block()
            is PostgresDialect -> c.block()
        }
    }

    internal fun Connection.nowMs(): Long = query("SELECT $now AS now", emptyList()) { it.getLong("now") }.single()

    /**
     * The upsert of the records in the group table [source] (columns run_id, step_id, kind, status, result, failure,
     * attempts, wake_at) that pass [where]; a final record is never overwritten.
     */
    internal fun insertRecordsFrom(source: String, where: String): String =
        """INSERT INTO stent_records (run_id, step_id, kind, status, result, failure, attempts, wake_at, created_at, updated_at)
           SELECT run_id, step_id, kind, status, result, failure, attempts, wake_at, $now, $now FROM $source WHERE $where
           $UPSERT_RECORD"""

    /** Inserts or updates a record if [fencingToken] holds the lease; a final record is never overwritten. */
    internal fun Connection.upsertRecord(runId: String, fencingToken: Long, r: StoredRecord): Int = update(
        """INSERT INTO stent_records (run_id, step_id, kind, status, result, failure, attempts, wake_at, created_at, updated_at)
           SELECT ?, ?, ?, ?, CAST(? AS TEXT), CAST(? AS TEXT), ?, CAST(? AS BIGINT), $now, $now
           WHERE EXISTS (SELECT 1 FROM stent_runs WHERE id = ? AND fencing_token = ? AND status = 'RUNNING' ${dialect.shareLock})
           $UPSERT_RECORD""",
        listOf(runId, r.stepId, r.kind.name, r.status.name, r.result, r.failure, r.attempts, r.wakeAt, runId, fencingToken),
    )

    internal fun Connection.holdsLease(runId: String, fencingToken: Long): Boolean = query(
        "SELECT 1 FROM stent_runs WHERE id = ? AND fencing_token = ? AND status = 'RUNNING' ${dialect.rowLock}",
        listOf(runId, fencingToken),
    ) { true }.isNotEmpty()

    internal fun Connection.unloadIn(runId: String, fencingToken: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome {
        val cancel = query(
            "SELECT cancel_requested FROM stent_runs WHERE id = ? AND fencing_token = ? AND status = 'RUNNING' ${dialect.rowLock}",
            listOf(runId, fencingToken),
        ) { it.getBoolean("cancel_requested") }.firstOrNull() ?: return UnloadOutcome.LEASE_LOST
        if (cancel) {
            finishIn(runId, fencingToken, RunStatus.CANCELLED, null, null)
            return UnloadOutcome.CANCELLED
        }
        // a name ending in '*' waits for every name that starts with the rest (a map's children)
        val (prefixes, names) = signalNames.partition { it.endsWith('*') }
        val byName = if (names.isEmpty()) "" else "name IN (${marks(names.size)})"
        val byPrefix = prefixes.map { startsWith("name", it.dropLast(1)) }
        val signalled = signalNames.isNotEmpty() && query(
            "SELECT 1 FROM stent_signals WHERE run_id = ? AND consumed_by IS NULL AND (${(listOf(byName) + byPrefix.map { it.first }).filter { it.isNotEmpty() }.joinToString(" OR ")}) LIMIT 1",
            listOf<Any?>(runId) + names + byPrefix.flatMap { it.second },
        ) { true }.isNotEmpty()
        return if (signalled) {
            update(
                """UPDATE stent_runs SET status = 'PENDING', ready_at = $now, lease_owner = NULL, lease_expires_at = NULL,
                       claim_count = 0, updated_at = $now WHERE id = ? AND fencing_token = ?""",
                listOf(runId, fencingToken),
            )
            UnloadOutcome.READY
        } else {
            update(
                """UPDATE stent_runs SET status = 'WAITING', ready_at = CAST(? AS BIGINT), wait_signals = CAST(? AS TEXT),
                       lease_owner = NULL, lease_expires_at = NULL, claim_count = 0, updated_at = $now
                   WHERE id = ? AND fencing_token = ?""",
                listOf(wakeAtMs, if (signalNames.isEmpty()) null else namesJson.encodeToString(namesSerializer, signalNames.toList()), runId, fencingToken),
            )
            UnloadOutcome.WAITING
        }
    }

    internal fun Connection.finishIn(runId: String, fencingToken: Long, status: RunStatus, output: String?, failure: String?): WriteOutcome {
        require(status.isFinished) { "finish needs a final status, not $status" }
        val n = update(
            """UPDATE stent_runs SET status = ?, output = CAST(? AS TEXT), failure = CAST(? AS TEXT), failure_kind = CAST(? AS TEXT),
                   finished_at = $now, updated_at = $now, lease_owner = NULL, lease_expires_at = NULL, ready_at = NULL, wait_signals = NULL
               WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'""",
            listOf(status.name, output, failure, failureKindOf(status, failure), runId, fencingToken),
        )
        return if (n == 1) WriteOutcome.OK else WriteOutcome.LEASE_LOST
    }

    internal fun Connection.releaseIn(runId: String, fencingToken: Long, retryAfterMs: Long?): WriteOutcome {
        val n = if (retryAfterMs == null) {
            update(
                """UPDATE stent_runs SET status = 'PENDING', ready_at = $now, lease_owner = NULL, lease_expires_at = NULL,
                       claim_count = 0, updated_at = $now WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'""",
                listOf(runId, fencingToken),
            )
        } else {
            // not a clean release: the claim count stays, so a run whose writes keep failing trips the poison guard
            update(
                """UPDATE stent_runs SET status = 'PENDING', ready_at = $now + ?, lease_owner = NULL, lease_expires_at = NULL,
                       updated_at = $now WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'""",
                listOf(retryAfterMs, runId, fencingToken),
            )
        }
        return if (n == 1) WriteOutcome.OK else WriteOutcome.LEASE_LOST
    }

    /** The failure kind stored with a finish: only FAILED runs have one. */
    internal fun failureKindOf(status: RunStatus, failure: String?): String? =
        if (status == RunStatus.FAILED) dev.stent.store.FailureKinds.ofEncoded(failure)?.name else null

    internal fun runRecord(rs: ResultSet): RunRecord {
        val status = RunStatus.valueOf(rs.getString("status"))
        // a RUNNING run parked in its worker's memory reads as WAITING, until when it waits
        val parked = status == RunStatus.RUNNING && rs.longOrNull("parked_at") != null
        return RunRecord(
            rs.getString("id"), rs.getString("workflow_name"), if (parked) RunStatus.WAITING else status, rs.getString("input"),
            rs.getString("output"), rs.getString("failure"), rs.getString("queue"), rs.getInt("priority"), rs.getLong("created_at"),
            rs.longOrNull("started_at"), rs.getLong("updated_at"), rs.longOrNull("finished_at"),
            if (parked) rs.longOrNull("parked_until") else rs.longOrNull("ready_at"),
            rs.getInt("claim_count"), rs.getString("lease_owner"), rs.longOrNull("lease_expires_at"), rs.getBoolean("cancel_requested"),
            rs.longOrNull("deadline_at"), names(rs.getString("wait_signals")), rs.getString("parent_id"), rs.getString("partition_key"),
            failureKind(rs.getString("failure_kind")), rs.getInt("retries"), rs.longOrNull("discarded_at"), rs.getString("continued_as"),
        )
    }

    internal fun runRecord(r: ResultRow): RunRecord {
        val status = RunStatus.valueOf(r[RunsTable.status])
        val parked = status == RunStatus.RUNNING && r[RunsTable.parkedAt] != null
        return RunRecord(
            r[RunsTable.id], r[RunsTable.workflowName], if (parked) RunStatus.WAITING else status, r[RunsTable.input],
            r[RunsTable.output], r[RunsTable.failure], r[RunsTable.queue], r[RunsTable.priority], r[RunsTable.createdAt],
            r[RunsTable.startedAt], r[RunsTable.updatedAt], r[RunsTable.finishedAt], if (parked) r[RunsTable.parkedUntil] else r[RunsTable.readyAt],
            r[RunsTable.claimCount], r[RunsTable.leaseOwner], r[RunsTable.leaseExpiresAt], r[RunsTable.cancelRequested],
            r[RunsTable.deadlineAt], names(r[RunsTable.waitSignals]), r[RunsTable.parentId], r[RunsTable.partitionKey],
            failureKind(r[RunsTable.failureKind]), r[RunsTable.retries], r[RunsTable.discardedAt], r[RunsTable.continuedAs],
        )
    }

    /** A stored failure kind; one this version does not know (written by a newer one) reads as WORKFLOW. */
    private fun failureKind(name: String?): dev.stent.FailureKind? =
        name?.let { n -> dev.stent.FailureKind.entries.firstOrNull { it.name == n } ?: dev.stent.FailureKind.WORKFLOW }

    private fun names(json: String?): List<String> = json?.let { namesJson.decodeFromString(namesSerializer, it) } ?: emptyList()

    internal fun recordOf(r: ResultRow) = StoredRecord(
        r[RecordsTable.stepId], RecordKind.valueOf(r[RecordsTable.kind]), RecordStatus.valueOf(r[RecordsTable.status]),
        r[RecordsTable.result], r[RecordsTable.failure], r[RecordsTable.attempts], r[RecordsTable.wakeAt], r[RecordsTable.updatedAt],
        createdAt = r[RecordsTable.createdAt],
    )

    internal fun recordOf(rs: ResultSet) = StoredRecord(
        rs.getString("step_id"), RecordKind.valueOf(rs.getString("kind")), RecordStatus.valueOf(rs.getString("status")),
        rs.getString("result"), rs.getString("failure"), rs.getInt("attempts"), rs.longOrNull("wake_at"), rs.getLong("updated_at"),
        createdAt = rs.getLong("created_at"),
    )

    /**
     * `WITH v (columns) AS (…)` over [rows], and its arguments. PostgreSQL gets one array per column and
     * `unnest`, so the statement's text, and the prepared statement the driver caches for it, is the same
     * for any number of rows; SQLite gets a `VALUES` list of typed placeholders.
     */
    internal fun Connection.groupTable(columns: List<Pair<String, String>>, rows: List<List<Any?>>) = dialect.groupTable(this, columns, rows)

    /**
     * Rows of a group write in the order PostgreSQL's heartbeat locks runs (`COLLATE "C"`: by UTF-8
     * bytes). A group statement locks its runs' rows in the order of its rows, so every multi-row lock
     * in Stent goes the same way and two of them never wait on each other in a cycle.
     */
    internal fun <T> List<T>.inLockOrder(id: (T) -> String): List<T> =
        sortedWith { a, b -> java.util.Arrays.compareUnsigned(id(a).toByteArray(), id(b).toByteArray()) }

    internal fun Connection.inList(column: String, values: Collection<String>) = dialect.inList(this, column, values)

    /** `column` starts with [prefix], and its arguments: both databases count characters as code points, as Kotlin's `length` does not. */
    internal fun startsWith(column: String, prefix: String): Pair<String, List<Any?>> =
        "substr($column, 1, ?) = ?" to listOf(prefix.codePointCount(0, prefix.length), prefix)

    internal companion object {
        /** A record is updated in place until it is final; a final record is never overwritten. */
        const val UPSERT_RECORD = """ON CONFLICT (run_id, step_id) DO UPDATE SET status = excluded.status, result = excluded.result,
               failure = excluded.failure, attempts = excluded.attempts, wake_at = excluded.wake_at, updated_at = excluded.updated_at
           WHERE stent_records.status NOT IN ('COMPLETED', 'FAILED', 'TIMED_OUT')"""
    }
}

/** JSON arrays of names (signals a run waits for, a worker's workflows and queues). */
internal val namesJson = Json
internal val namesSerializer = ListSerializer(String.serializer())
