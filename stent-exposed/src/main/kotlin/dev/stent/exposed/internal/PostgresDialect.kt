package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction

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
    override fun lockForMigration(tx: JdbcTransaction) {
        tx.exec("SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})")
    }

    /** "Stent" in ASCII. */
    private const val MIGRATION_LOCK_KEY = 0x5374656E74L
}
