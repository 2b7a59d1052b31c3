package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction

/** What differs between SQLite and PostgreSQL in Stent's SQL. */
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

    /** Serializes migrations across processes for the rest of the transaction. */
    abstract fun lockForMigration(tx: JdbcTransaction)

    /** SQLite: every transaction is `BEGIN IMMEDIATE` (set on the connection), which already serializes writers. */
    object Sqlite : SqlDialect() {
        override val now = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
        override val claimLock = ""
        override val rowLock = ""
        override val shareLock = ""
        override val updatedId = "id"
        override val isolation = java.sql.Connection.TRANSACTION_SERIALIZABLE
        override fun lockForMigration(tx: JdbcTransaction) = Unit
        override fun createSchema(tx: JdbcTransaction, schema: String) = error("SQLite has no schemas")
    }

    /** PostgreSQL: row locks with SKIP LOCKED for claims, an advisory lock for migrations. */
    object Postgres : SqlDialect() {
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
}
