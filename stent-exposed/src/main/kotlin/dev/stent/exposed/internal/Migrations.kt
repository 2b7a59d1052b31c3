package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.core.max
import org.jetbrains.exposed.v1.jdbc.Database
import org.jetbrains.exposed.v1.jdbc.JdbcTransaction
import org.jetbrains.exposed.v1.jdbc.SchemaUtils
import org.jetbrains.exposed.v1.jdbc.insert
import org.jetbrains.exposed.v1.jdbc.select
import org.jetbrains.exposed.v1.jdbc.transactions.transaction

/** One schema change; applied once, in [version] order, and recorded in `stent_schema_version`. */
internal class Migration(val version: Int, val description: String, val apply: JdbcTransaction.() -> Unit)

/**
 * The versioned migrations. Append new ones; never edit an applied one. All run in one
 * transaction under the dialect's lock, so many workers starting together migrate once.
 */
internal object Migrations {
    val all: List<Migration> = listOf(
        Migration(1, "runs, steps and signals") { create(RunsTable, StepsTable, SignalsTable) },
    )

    val latest: Int get() = all.last().version

    /** Creates tables and their indexes inside the current transaction (SchemaUtils.create would commit, dropping the lock). */
    private fun JdbcTransaction.create(vararg tables: org.jetbrains.exposed.v1.core.Table) {
        SchemaUtils.createStatements(*tables).forEach { exec(it) }
    }

    /** Applies the missing migrations; returns how many ran. */
    fun migrate(db: Database, dialect: SqlDialect, schema: String?): Int = transaction(db) {
        dialect.lockForMigration(this)
        if (schema != null) dialect.createSchema(this, schema)
        create(SchemaVersionTable)
        val current = SchemaVersionTable.select(SchemaVersionTable.version.max()).single()[SchemaVersionTable.version.max()] ?: 0
        check(current <= latest) {
            "the database schema is version $current, newer than this Stent's $latest: upgrade Stent before using this database"
        }
        val pending = all.filter { it.version > current }
        for (m in pending) {
            m.apply(this)
            SchemaVersionTable.insert {
                it[version] = m.version
                it[appliedAt] = System.currentTimeMillis()
            }
        }
        pending.size
    }
}
