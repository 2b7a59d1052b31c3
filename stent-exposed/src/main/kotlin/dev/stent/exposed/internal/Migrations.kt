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
        // Partial indexes over unfinished runs only: a finished run leaves them, so they stay as small as the
        // work in flight, finishing a run writes two index entries instead of five, and the claim walks them in
        // order. Their predicates are IS NOT NULL, never a status: an index whose predicate a point update's
        // `status = 'RUNNING'` implies tempts the planner to scan it instead of the primary key.
        Migration(2, "partial indexes for the claim, timers, expired leases and the heartbeat") {
            for (name in listOf("stent_runs_ready", "stent_runs_lease", "stent_runs_owner")) exec("DROP INDEX IF EXISTS $name")
            // ready_at is set only while a run is PENDING or WAITING with a time; in the claim's order, so a claim
            // reads as many entries as it takes, however long the backlog
            exec("CREATE INDEX stent_runs_ready ON stent_runs (priority DESC, ready_at) WHERE ready_at IS NOT NULL")
            // the earliest timer or delayed start, for an idle worker's next poll
            exec("CREATE INDEX stent_runs_due ON stent_runs (ready_at) WHERE ready_at IS NOT NULL")
            // lease_expires_at and lease_owner are set only while a run is RUNNING
            exec("CREATE INDEX stent_runs_lease ON stent_runs (lease_expires_at) WHERE lease_expires_at IS NOT NULL")
            exec("CREATE INDEX stent_runs_owner ON stent_runs (lease_owner) WHERE lease_owner IS NOT NULL")
        },
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
