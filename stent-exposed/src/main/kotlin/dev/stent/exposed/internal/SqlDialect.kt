package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction

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

    /** Serializes migrations across processes for the rest of the transaction. */
    abstract fun lockForMigration(tx: JdbcTransaction)
}
