package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.jdbc.JdbcTransaction

/** SQLite: every transaction is `BEGIN IMMEDIATE` (set on the connection), which already serializes writers. */
internal object SqliteDialect : SqlDialect() {
    override val now = "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    override val claimLock = ""
    override val rowLock = ""
    override val shareLock = ""
    override val updatedId = "id"
    override val isolation = java.sql.Connection.TRANSACTION_SERIALIZABLE
    override fun lockForMigration(tx: JdbcTransaction) = Unit
    override fun createSchema(tx: JdbcTransaction, schema: String) = error("SQLite has no schemas")
}
