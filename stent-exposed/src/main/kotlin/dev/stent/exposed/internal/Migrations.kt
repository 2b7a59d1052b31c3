package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.core.max
import org.jetbrains.exposed.v1.jdbc.Database
import org.jetbrains.exposed.v1.jdbc.JdbcTransaction
import org.jetbrains.exposed.v1.jdbc.SchemaUtils
import org.jetbrains.exposed.v1.jdbc.insert
import org.jetbrains.exposed.v1.jdbc.select
import org.jetbrains.exposed.v1.jdbc.transactions.transaction

/** One schema change; applied once, in [version] order, and recorded in `stent_schema_version`. */
internal class Migration(val version: Int, val description: String, val apply: JdbcTransaction.(SqlDialect) -> Unit)

/**
 * The versioned migrations. Append new ones; never edit an applied one. All run in one
 * transaction under the dialect's lock, so many workers starting together migrate once.
 */
internal object Migrations {
    val all: List<Migration> = listOf(
        // Frozen as the DDL Exposed generated for the table objects of that release, so later changes to the
        // table objects cannot change what migration 1 does on a new database.
        Migration(1, "runs, steps and signals") { dialect ->
            val ddl = when (dialect) {
                is SqliteDialect -> listOf(
                    """CREATE TABLE IF NOT EXISTS stent_runs (id VARCHAR(200) NOT NULL PRIMARY KEY, workflow VARCHAR(200) NOT NULL,
                       status VARCHAR(16) NOT NULL, "input" TEXT NOT NULL, "output" TEXT NULL, failure TEXT NULL, queue VARCHAR(200) NOT NULL,
                       priority INT NOT NULL, ready_at BIGINT NULL, wait_signals TEXT NULL, lease_owner VARCHAR(200) NULL,
                       lease_token BIGINT NOT NULL, lease_expires_at BIGINT NULL, claim_count INT NOT NULL, cancel_requested BOOLEAN NOT NULL,
                       created_at BIGINT NOT NULL, started_at BIGINT NULL, updated_at BIGINT NOT NULL, completed_at BIGINT NULL,
                       CONSTRAINT chk_stent_runs_signed_integer_priority CHECK (priority BETWEEN -2147483648 AND 2147483647),
                       CONSTRAINT chk_stent_runs_signed_integer_claim_count CHECK (claim_count BETWEEN -2147483648 AND 2147483647))""",
                    """CREATE TABLE IF NOT EXISTS stent_steps (run_id VARCHAR(200) NOT NULL, step_id VARCHAR(400) NOT NULL, kind VARCHAR(16) NOT NULL,
                       status VARCHAR(16) NOT NULL, "result" TEXT NULL, failure TEXT NULL, attempts INT NOT NULL, wake_at BIGINT NULL,
                       created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, CONSTRAINT pk_stent_steps PRIMARY KEY (run_id, step_id),
                       CONSTRAINT chk_stent_steps_signed_integer_attempts CHECK (attempts BETWEEN -2147483648 AND 2147483647))""",
                    """CREATE TABLE IF NOT EXISTS stent_signals (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id VARCHAR(200) NOT NULL,
                       "name" VARCHAR(200) NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL, consumed_by VARCHAR(400) NULL,
                       consumed_at BIGINT NULL)""",
                )
                is PostgresDialect -> listOf(
                    """CREATE TABLE IF NOT EXISTS stent_runs (id VARCHAR(200) PRIMARY KEY, workflow VARCHAR(200) NOT NULL, status VARCHAR(16) NOT NULL,
                       "input" TEXT NOT NULL, "output" TEXT NULL, failure TEXT NULL, queue VARCHAR(200) NOT NULL, priority INT NOT NULL,
                       ready_at BIGINT NULL, wait_signals TEXT NULL, lease_owner VARCHAR(200) NULL, lease_token BIGINT NOT NULL,
                       lease_expires_at BIGINT NULL, claim_count INT NOT NULL, cancel_requested BOOLEAN NOT NULL, created_at BIGINT NOT NULL,
                       started_at BIGINT NULL, updated_at BIGINT NOT NULL, completed_at BIGINT NULL)""",
                    """CREATE TABLE IF NOT EXISTS stent_steps (run_id VARCHAR(200), step_id VARCHAR(400), kind VARCHAR(16) NOT NULL,
                       status VARCHAR(16) NOT NULL, "result" TEXT NULL, failure TEXT NULL, attempts INT NOT NULL, wake_at BIGINT NULL,
                       created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, CONSTRAINT pk_stent_steps PRIMARY KEY (run_id, step_id))""",
                    """CREATE TABLE IF NOT EXISTS stent_signals (seq BIGSERIAL PRIMARY KEY, run_id VARCHAR(200) NOT NULL, "name" VARCHAR(200) NOT NULL,
                       payload TEXT NOT NULL, created_at BIGINT NOT NULL, consumed_by VARCHAR(400) NULL, consumed_at BIGINT NULL)""",
                )
            }
            val indexes = listOf(
                "CREATE INDEX stent_runs_ready ON stent_runs (status, ready_at)",
                "CREATE INDEX stent_runs_lease ON stent_runs (status, lease_expires_at)",
                "CREATE INDEX stent_runs_owner ON stent_runs (lease_owner)",
                "CREATE INDEX stent_runs_created ON stent_runs (created_at)",
                "CREATE INDEX stent_signals_run ON stent_signals (run_id, \"name\", seq)",
            )
            (ddl + indexes).forEach { exec(it) }
        },
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
        Migration(3, "run deadlines and the worker registry") {
            // when a run is cancelled for passing its deadline (null: none); an unloaded run's ready_at is never later
            exec("ALTER TABLE stent_runs ADD COLUMN deadline_at BIGINT NULL")
            // workers announce what they serve and renew last_seen_at every heartbeat, so describe() can say when nobody serves a run
            exec(
                """CREATE TABLE stent_workers (id VARCHAR(200) PRIMARY KEY, workflows TEXT NOT NULL, queues TEXT NULL, lease_ms BIGINT NOT NULL,
                   started_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, stopped_at BIGINT NULL)""",
            )
        },
        // one name per concept: a run's history is made of records, in code, docs and tables alike
        Migration(4, "stent_steps becomes stent_records") {
            exec("ALTER TABLE stent_steps RENAME TO stent_records")
        },
        // Each rename is skipped when done already: a snapshot of main shipped them inside migration 4.
        Migration(5, "one name per concept: workflow_name, fencing_token, finished_at") { dialect ->
            fun rename(table: String, from: String, to: String) {
                if (dialect.hasColumn(this, table, from)) exec("ALTER TABLE $table RENAME COLUMN $from TO $to")
            }
            if (dialect == PostgresDialect) exec("ALTER INDEX IF EXISTS pk_stent_steps RENAME TO pk_stent_records")
            rename("stent_runs", "workflow", "workflow_name")
            rename("stent_runs", "lease_token", "fencing_token")
            rename("stent_runs", "completed_at", "finished_at")
            rename("stent_workers", "workflows", "workflow_names")
        },
        // a wait is not work: a run waiting in memory gives its slot back, and reads show it WAITING
        Migration(6, "runs waiting in a worker's memory") {
            exec("ALTER TABLE stent_runs ADD COLUMN parked_at BIGINT NULL")
            exec("ALTER TABLE stent_runs ADD COLUMN parked_until BIGINT NULL")
        },
        // a child run is a run: with its parent, the parent's call that started it, and whether it outlives the parent
        Migration(7, "child runs") {
            exec("ALTER TABLE stent_runs ADD COLUMN parent_id VARCHAR(200) NULL")
            exec("ALTER TABLE stent_runs ADD COLUMN parent_call VARCHAR(400) NULL")
            exec("ALTER TABLE stent_runs ADD COLUMN detached BOOLEAN NOT NULL DEFAULT FALSE")
            // a parent's children, for cancelling them and for describe(); only child runs are in it
            exec("CREATE INDEX stent_runs_parent ON stent_runs (parent_id) WHERE parent_id IS NOT NULL")
        },
        // a child's outcome is signal `child:<call id>`, and call ids are up to 400 characters (SQLite does not limit VARCHAR)
        Migration(8, "signal names as long as a child's call id") { dialect ->
            if (dialect == PostgresDialect) exec("ALTER TABLE stent_signals ALTER COLUMN \"name\" TYPE VARCHAR(420)")
        },
        // queues that protect what they call: limits read by every claim, partition keys, dead letters, a step cache, schedules
        Migration(9, "queue limits, partition keys, dead letters, the step cache, schedules and retention") {
            exec("ALTER TABLE stent_runs ADD COLUMN partition_key VARCHAR(200) NULL")
            exec("ALTER TABLE stent_runs ADD COLUMN failure_kind VARCHAR(32) NULL")
            exec("ALTER TABLE stent_runs ADD COLUMN retries INT NOT NULL DEFAULT 0")
            exec("ALTER TABLE stent_runs ADD COLUMN discarded_at BIGINT NULL")
            // the runs executing per queue and key, which a limited queue's claim counts (lease_owner is set only while RUNNING)
            exec("CREATE INDEX stent_runs_queue_running ON stent_runs (queue, partition_key) WHERE lease_owner IS NOT NULL")
            // the starts of a rate-limited queue within its period
            exec("CREATE INDEX stent_runs_queue_started ON stent_runs (queue, started_at) WHERE started_at IS NOT NULL")
            // retention deletes the oldest finished runs first
            exec("CREATE INDEX stent_runs_finished ON stent_runs (finished_at) WHERE finished_at IS NOT NULL")
            // a row only for a queue with a limit
            exec(
                """CREATE TABLE stent_queues (name VARCHAR(200) PRIMARY KEY, concurrency INT NULL, key_concurrency INT NULL,
                   rate_limit INT NULL, rate_period_ms BIGINT NULL, updated_at BIGINT NOT NULL)""",
            )
            exec(
                """CREATE TABLE stent_cache (cache_key VARCHAR(400) PRIMARY KEY, "result" TEXT NOT NULL, run_id VARCHAR(200) NOT NULL,
                   created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)""",
            )
            exec("CREATE INDEX stent_cache_expires ON stent_cache (expires_at)")
            exec(
                """CREATE TABLE stent_schedules (name VARCHAR(200) PRIMARY KEY, cron VARCHAR(200) NOT NULL, zone VARCHAR(64) NOT NULL,
                   workflow_name VARCHAR(200) NOT NULL, "input" TEXT NOT NULL, queue VARCHAR(200) NOT NULL, priority INT NOT NULL,
                   catch_up INT NOT NULL, paused BOOLEAN NOT NULL, next_fire_at BIGINT NULL, last_fire_at BIGINT NULL, timeout_ms BIGINT NULL,
                   created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)""",
            )
            exec("CREATE INDEX stent_schedules_due ON stent_schedules (next_fire_at) WHERE next_fire_at IS NOT NULL")
        },
        Migration(10, "trace contexts of runs and signals") {
            // the starter's and the sender's W3C traceparent (or whatever the tracing hook stores), so any worker continues the trace
            exec("ALTER TABLE stent_runs ADD COLUMN trace_context TEXT NULL")
            exec("ALTER TABLE stent_signals ADD COLUMN trace_context TEXT NULL")
        },
        Migration(11, "runs that continued as new") {
            // the next run of the chain: clients awaiting this run follow it; the chain's first id finds its latest run
            exec("ALTER TABLE stent_runs ADD COLUMN continued_as VARCHAR(200) NULL")
            exec("ALTER TABLE stent_runs ADD COLUMN chain_root VARCHAR(200) NULL")
            // one entry per chain, its latest run: a signal to the first id reads one row however long the chain
            exec("CREATE INDEX stent_runs_chain ON stent_runs (chain_root) WHERE chain_root IS NOT NULL AND continued_as IS NULL")
        },
    )

    val latest: Int get() = all.last().version

    /** Creates tables and their indexes inside the current transaction (SchemaUtils.create would commit, dropping the lock). */
    private fun JdbcTransaction.create(vararg tables: org.jetbrains.exposed.v1.core.Table) {
        SchemaUtils.createStatements(*tables).forEach { exec(it) }
    }

    /**
     * Checks, changing nothing, that the database has this Stent's schema: throws [dev.stent.StentSchemaException]
     * when it has no Stent tables or another version.
     */
    fun check(db: Database, schema: String?) {
        val found = try {
            transaction(db) { SchemaVersionTable.select(SchemaVersionTable.version.max()).single()[SchemaVersionTable.version.max()] }
        } catch (e: Exception) {
            null // no version table: no Stent tables
        }
        val where = schema?.let { "schema '$it' of " } ?: ""
        when {
            found == null -> throw dev.stent.StentSchemaException(
                null, latest,
                "the ${where}database has no Stent tables: check the URL (and the schema), or start a worker once, which creates them",
            )
            found < latest -> throw dev.stent.StentSchemaException(
                found, latest,
                "the ${where}database has Stent schema version $found, older than this Stent's $latest: start a worker of this version once, which migrates it",
            )
            found > latest -> throw dev.stent.StentSchemaException(
                found, latest,
                "the ${where}database has Stent schema version $found, newer than this Stent's $latest: use a Stent of that version or newer",
            )
        }
    }

    /** Applies the missing migrations up to [upTo] (a test builds an older schema with it); returns how many ran. */
    fun migrate(db: Database, dialect: SqlDialect, schema: String?, upTo: Int = latest): Int = transaction(db) {
        dialect.lockForMigration(this)
        if (schema != null) dialect.createSchema(this, schema)
        create(SchemaVersionTable)
        val current = SchemaVersionTable.select(SchemaVersionTable.version.max()).single()[SchemaVersionTable.version.max()] ?: 0
        check(current <= latest) {
            "the database schema is version $current, newer than this Stent's $latest: upgrade Stent before using this database"
        }
        val pending = all.filter { it.version > current && it.version <= upTo }
        for (m in pending) {
            m.apply(this, dialect)
            SchemaVersionTable.insert {
                it[version] = m.version
                it[appliedAt] = System.currentTimeMillis()
            }
        }
        pending.size
    }
}
