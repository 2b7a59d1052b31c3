package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction
import java.sql.Connection

/**
 * SQLite: every transaction is `BEGIN IMMEDIATE` (set on the connection), which already serializes writers.
 * [now] is the system clock, or a clock function registered on the connection (the test kit's virtual time).
 */
internal class SqliteDialect(override val now: String = SYSTEM_NOW) : SqlDialect() {
    companion object {
        const val SYSTEM_NOW = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    }

    override val claimLock = ""
    override val rowLock = ""
    override val shareLock = ""
    override val updatedId = "id"
    override val isolation = java.sql.Connection.TRANSACTION_SERIALIZABLE
    override fun lockForMigration(tx: JdbcTransaction) = Unit
    override fun createSchema(tx: JdbcTransaction, schema: String) = error("SQLite has no schemas")

    override fun hasColumn(tx: JdbcTransaction, table: String, column: String): Boolean =
        tx.exec("SELECT 1 FROM pragma_table_info('$table') WHERE name = '$column'") { it.next() } == true

    // BEGIN IMMEDIATE already serializes writers: one ordered pick over all sets
    override fun claim(parts: ClaimParts) = with(parts) {
        val picks = limited.joinToString("") { " UNION ALL SELECT * FROM (${it.first})" }
        """UPDATE stent_runs $set WHERE id IN (
               SELECT id FROM (SELECT * FROM ($expired ORDER BY priority DESC, since LIMIT ?)
                               UNION ALL SELECT * FROM ($ready ORDER BY priority DESC, since LIMIT ?)$picks)
               ORDER BY pass, priority DESC, since LIMIT ?)
           $returning""" to listOf<Any?>(workerId, leaseMs) + filterArgs + limit + filterArgs + limit + limited.flatMap {
            it.second
        } + limit
    }

    override fun lockQueues(count: Int): String? = null

    override fun heartbeat(ids: Pair<String, List<Any?>>, workerId: String, leaseMs: Long) =
        """UPDATE stent_runs SET lease_expires_at = $now + ? WHERE lease_owner = ? AND status = 'RUNNING' AND ${ids.first}
           RETURNING id, fencing_token, cancel_requested""" to listOf<Any?>(leaseMs, workerId) + ids.second

    // a VALUES list of typed placeholders
    override fun groupTable(connection: Connection, columns: List<Pair<String, String>>, rows: List<List<Any?>>): Pair<String, List<Any?>> {
        val row = columns.joinToString(", ", "(", ")") { "CAST(? AS ${it.second})" }
        return "WITH v (${columns.joinToString(", ") { it.first }}) AS (VALUES ${List(rows.size) { row }.joinToString(", ")})" to rows.flatten()
    }

    override val groupLock = "" to ""

    override val idOrder = "ORDER BY id"

    override fun inList(connection: Connection, column: String, values: Collection<String>) = "$column IN (${marks(values.size)})" to values.toList()
}
