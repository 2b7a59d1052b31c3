package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction
import java.sql.Connection

/** PostgreSQL: row locks with SKIP LOCKED for claims, an advisory lock for migrations. */
internal object PostgresDialect : SqlDialect() {
    override val now = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)"
    override val claimLock = "FOR UPDATE SKIP LOCKED"
    override val rowLock = "FOR UPDATE"
    override val shareLock = "FOR SHARE"
    override val updatedId = "stent_runs.id"
    override val isolation = java.sql.Connection.TRANSACTION_READ_COMMITTED

    override fun createSchema(tx: JdbcTransaction, schema: String) {
        tx.exec("CREATE SCHEMA IF NOT EXISTS \"$schema\"")
    }
    override fun hasColumn(tx: JdbcTransaction, table: String, column: String): Boolean = tx.exec(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '$table' AND column_name = '$column'",
    ) { it.next() } == true

    override fun lockForMigration(tx: JdbcTransaction) {
        tx.exec("SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})")
    }

    // MATERIALIZED CTEs lock and pick the candidates once (`id IN (subquery)` may be re-run under
    // concurrency and update more rows than the limit); the ready set fills what the expired set left.
    // The ready runs are walked in the order of `stent_runs_ready` (priority DESC, ready_at), stopping at the limit.
    // Sorts are off for the claim, so the planner never reads every due run through `stent_runs_due` and sorts them
    // (it would when its statistics think few are due: a burst of starts, or a million timers due at once); and an
    // uncorrelated EXISTS on `stent_runs_due` gates that walk, so a claim with nothing due reads no index whole.
    // set_config(…, true), not SET LOCAL, which warns in the server's log outside a transaction block
    override val claimSettings = "SELECT set_config('enable_sort', 'off', true)"

    // the update finds the picked runs by primary key (`= ANY(ARRAY(…))`): joined to the picks instead, the planner,
    // which cannot know how few a LIMIT of a parameter returns, may hash-join them with a scan of the whole table
    override fun claim(parts: ClaimParts) = with(parts) {
        if (limited.isEmpty()) {
            """WITH e AS MATERIALIZED ($expired ORDER BY priority DESC, since LIMIT ? FOR UPDATE SKIP LOCKED),
                     r AS MATERIALIZED ($ready AND $anyReady ORDER BY priority DESC, since LIMIT (? - (SELECT COUNT(*) FROM e)) FOR UPDATE SKIP LOCKED)
               UPDATE stent_runs $set WHERE stent_runs.id = ANY(ARRAY(SELECT id FROM e UNION ALL SELECT id FROM r))
               $returning""" to filterArgs + limit + filterArgs + filterArgs + limit + workerId + leaseMs
        } else {
            // each limited queue's pick is a set of its own; the batch takes the best of all sets up to the limit
            val picks = limited.indices.joinToString("") { i -> ",\n l$i AS MATERIALIZED (${limited[i].first})" }
            val all = (listOf("e", "r") + limited.indices.map { "l$it" }).joinToString(" UNION ALL ") { "SELECT id, pass, priority, since FROM $it" }
            """WITH e AS MATERIALIZED ($expired ORDER BY priority DESC, since LIMIT ? FOR UPDATE SKIP LOCKED),
                     r AS MATERIALIZED ($ready AND $anyReady ORDER BY priority DESC, since LIMIT (? - (SELECT COUNT(*) FROM e)) FOR UPDATE SKIP LOCKED)$picks
               UPDATE stent_runs $set WHERE stent_runs.id = ANY(ARRAY(SELECT id FROM ($all) u ORDER BY pass, priority DESC, since LIMIT ?))
               $returning""" to filterArgs + limit + filterArgs + filterArgs + limit + limited.flatMap {
                it.second
            } + workerId + leaseMs + limit
        }
    }

    // in name order, so two claims never wait on each other in a cycle
    override fun lockQueues(count: Int): String? =
        if (count == 0) null else """SELECT name FROM stent_queues WHERE name IN (${marks(count)}) ORDER BY name COLLATE "C" FOR UPDATE"""

    // rows locked in id order, as group writes lock them, so a heartbeat and a group never deadlock
    override fun heartbeat(ids: Pair<String, List<Any?>>, workerId: String, leaseMs: Long) =
        """WITH l AS (SELECT id FROM stent_runs WHERE lease_owner = ? AND status = 'RUNNING' AND ${ids.first}
                       ORDER BY id COLLATE "C" FOR UPDATE)
           UPDATE stent_runs SET lease_expires_at = $now + ? FROM l WHERE stent_runs.id = l.id
           RETURNING stent_runs.id, fencing_token, cancel_requested""" to listOf<Any?>(workerId) + ids.second + leaseMs

    // one array per column and `unnest`, so the statement's text, and the prepared statement the driver
    // caches for it, is the same for any number of rows
    override fun groupTable(connection: Connection, columns: List<Pair<String, String>>, rows: List<List<Any?>>): Pair<String, List<Any?>> {
        val arrays = columns.mapIndexed { i, (_, type) -> connection.createArrayOf(type.lowercase(), Array(rows.size) { r -> rows[r][i] }) }
        val names = columns.joinToString(", ") { it.first }
        return "WITH v AS (SELECT * FROM unnest(${columns.joinToString(", ") { "CAST(? AS ${it.second}[])" }}) AS t ($names))" to arrays
    }

    // the plan of UPDATE … FROM may visit rows in any order, and two statements locking in other orders can
    // deadlock: lock them in id order first, as the heartbeat and the other group writes do
    override val groupLock =
        """, l AS (SELECT id FROM stent_runs WHERE id IN (SELECT id FROM v) ORDER BY id COLLATE "C" FOR UPDATE)""" to
            " AND stent_runs.id IN (SELECT id FROM l)"

    override val idOrder = """ORDER BY id COLLATE "C""""

    // `= ANY(?)` with one array, so the statement's text does not vary with the number of values
    override fun inList(connection: Connection, column: String, values: Collection<String>) =
        "$column = ANY(?)" to listOf<Any?>(connection.createArrayOf("text", values.toTypedArray()))

    /** "Stent" in ASCII. */
    private const val MIGRATION_LOCK_KEY = 0x5374656E74L
}
