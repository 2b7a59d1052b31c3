package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction
import java.sql.Connection

/** What differs between SQLite and PostgreSQL in Stent's SQL; one file per dialect (SqliteDialect.kt, PostgresDialect.kt). */
internal sealed class SqlDialect {
    /** The database clock as epoch milliseconds, stable within one statement. */
    abstract val now: String

    /** Appended to the claim's inner SELECT. */
    abstract val claimLock: String

    /** Appended to a SELECT of one run row that a transaction is about to change. */
    abstract val rowLock: String

    /** Appended to the fencing check of a checkpoint: holds the run row against a concurrent claim until commit. */
    abstract val shareLock: String

    /** Creates [schema] if it is missing (under the migration lock). */
    abstract fun createSchema(tx: JdbcTransaction, schema: String)

    /** The id column in `UPDATE stent_runs … FROM v … RETURNING`: qualified on PostgreSQL, where v has an id too; SQLite allows only the target's. */
    abstract val updatedId: String

    /** The JDBC isolation level every transaction uses. */
    abstract val isolation: Int

    /** True when [table] (in the current schema) has [column]. */
    abstract fun hasColumn(tx: JdbcTransaction, table: String, column: String): Boolean

    /** Serializes migrations across processes for the rest of the transaction. */
    abstract fun lockForMigration(tx: JdbcTransaction)

    /** The claim as one statement over the two candidate sets of [parts], and its arguments. */
    abstract fun claim(parts: ClaimParts): Pair<String, List<Any?>>

    /**
     * A statement that locks the rows of [count] limited queues (their names are its arguments, sorted) for
     * the rest of the claim's transaction, or null where writers are serialized already.
     */
    abstract fun lockQueues(count: Int): String?

    /** Renews the leases [workerId] holds on the runs matched by [ids] (an [inList] clause), returning id, fencing_token and cancel_requested. */
    abstract fun heartbeat(ids: Pair<String, List<Any?>>, workerId: String, leaseMs: Long): Pair<String, List<Any?>>

    /**
     * `WITH v (columns) AS (…)` over [rows], and its arguments: the rows of a group write as a table
     * the statement joins.
     */
    abstract fun groupTable(connection: Connection, columns: List<Pair<String, String>>, rows: List<List<Any?>>): Pair<String, List<Any?>>

    /** A CTE `l` that locks the run rows of `v` before a group update, and the condition that joins it; empty where writers are serialized. */
    abstract val groupLock: Pair<String, String>

    /** `ORDER BY id` in the order multi-row locks take rows (PostgreSQL: bytes, as the heartbeat and group writes). */
    abstract val idOrder: String

    /** `column IN (…)` for [values], and its arguments. */
    abstract fun inList(connection: Connection, column: String, values: Collection<String>): Pair<String, List<Any?>>

    /** A statement setting what the claim runs under (local to its implicit transaction; it returns one row), or null. */
    open val claimSettings: String? = null
}

/**
 * The parts of the claim both dialects share: the candidate SELECTs over expired leases and ready
 * runs ([filterArgs] fill the `?` of each), the picks of queues with limits, the SET list and the RETURNING list.
 */
internal class ClaimParts(
    val expired: String, val ready: String, val set: String, val returning: String,
    val filterArgs: List<Any?>, val limit: Int, val workerId: String, val leaseMs: Long,
    /** `EXISTS` of a ready run of the request (its `?` are [filterArgs] again): lets a dialect skip the ordered walk when there is none. */
    val anyReady: String,
    /** One SELECT (id, pass, priority, since) and its arguments per limited queue; see `limitedBranch`. */
    val limited: List<Pair<String, List<Any?>>> = emptyList(),
)
