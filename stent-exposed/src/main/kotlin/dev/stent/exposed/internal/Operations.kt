package dev.stent.exposed.internal

import dev.stent.FailureKind
import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.store.NewRun
import dev.stent.store.QueueLimitsRecord
import dev.stent.store.QueueRecord
import dev.stent.store.ScheduleFiring
import dev.stent.store.SchedulePlan
import dev.stent.store.ScheduleRecord
import dev.stent.store.StoredRecord
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonObject
import java.sql.Connection
import java.sql.ResultSet

// Operating runs and queues: limits, dead letters (retry, discard), deletion and retention, the step cache, schedules.

internal fun StoreContext.setQueueLimits(limits: QueueLimitsRecord) {
    val none = limits.concurrency == null && limits.concurrencyPerKey == null && limits.rateLimit == null
    autocommit {
        if (none) {
            update("DELETE FROM stent_queues WHERE name = ?", listOf(limits.name))
        } else {
            update(
                """INSERT INTO stent_queues (name, concurrency, key_concurrency, rate_limit, rate_period_ms, updated_at)
                   VALUES (?, CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS BIGINT), $now)
                   ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency, key_concurrency = excluded.key_concurrency,
                       rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms, updated_at = excluded.updated_at""",
                listOf(limits.name, limits.concurrency, limits.concurrencyPerKey, limits.rateLimit, limits.ratePeriodMs),
            )
        }
    }
    // this process's claims apply the change at once; other processes re-read within a second
    queueLimitsGeneration.incrementAndGet()
    queueLimitsCache = null
    wake(WakeUpMessage.WORK)
}

internal fun StoreContext.listQueues(): List<QueueRecord> = autocommit {
    val limits = query("SELECT * FROM stent_queues", emptyList(), ::queueLimitsOf).associateBy { it.name }
    // unfinished runs only: the partial indexes over them keep this as small as the work in flight
    val counts = HashMap<String, LongArray>()
    query(
        """SELECT queue, CASE WHEN status = 'RUNNING' AND parked_at IS NOT NULL THEN 'WAITING' ELSE status END AS s, COUNT(*) AS n
           FROM stent_runs WHERE status IN ('PENDING', 'RUNNING', 'WAITING') GROUP BY queue, s""",
        emptyList(),
    ) { rs ->
        val c = counts.getOrPut(rs.getString("queue")) { LongArray(3) }
        c[listOf("PENDING", "RUNNING", "WAITING").indexOf(rs.getString("s"))] += rs.getLong("n")
    }
    (limits.keys + counts.keys).sorted().map { name ->
        val c = counts[name] ?: LongArray(3)
        QueueRecord(name, limits[name], c[0], c[1], c[2])
    }
}

internal fun StoreContext.retryRun(runId: String): RunStatus? = tx {
    val run = query("SELECT status, failure_kind, failure FROM stent_runs WHERE id = ? ${dialect.rowLock}", listOf(runId)) {
        Triple(RunStatus.valueOf(it.getString("status")), it.getString("failure_kind"), it.getString("failure"))
    }.firstOrNull() ?: return@tx null
    if (run.first != RunStatus.FAILED) return@tx run.first
    // the step that failed the run starts again with no attempts; every other record stays (a failure the code caught is history)
    if (run.second == FailureKind.STEP.name) {
        val failed = query(
            "SELECT step_id, failure FROM stent_records WHERE run_id = ? AND kind = ? AND status = ? ORDER BY updated_at DESC",
            listOf(runId, RecordKind.STEP.name, RecordStatus.FAILED.name),
        ) { it.getString(1) to it.getString(2) }
        stepThatFailed(run.third, failed)?.let { update("DELETE FROM stent_records WHERE run_id = ? AND step_id = ?", listOf(runId, it)) }
    }
    // a retry is a new start (a rate limit counts it); a deadline that passed would cancel it at once, so it is dropped
    update(
        """UPDATE stent_runs SET status = 'PENDING', ready_at = $now, failure = NULL, failure_kind = NULL, finished_at = NULL,
               discarded_at = NULL, claim_count = 0, cancel_requested = FALSE, retries = retries + 1, started_at = NULL,
               deadline_at = CASE WHEN deadline_at <= $now THEN NULL ELSE deadline_at END, updated_at = $now WHERE id = ?""",
        listOf(runId),
    )
    RunStatus.PENDING
}.also { if (it == RunStatus.PENDING) wake(WakeUpMessage.WORK) }

/**
 * Which of a run's FAILED step records failed it: the one whose failure is the cause in the run's failure (a
 * StepFailedException records the step's failure as its cause); else the latest.
 */
private fun stepThatFailed(runFailure: String?, failed: List<Pair<String, String?>>): String? {
    fun parse(text: String?) = text?.let { runCatching { Json.parseToJsonElement(it) }.getOrNull() }
    val cause = (parse(runFailure) as? JsonObject)?.get("cause")
    return failed.firstOrNull { (_, f) -> cause != null && parse(f) == cause }?.first ?: failed.firstOrNull()?.first
}

internal fun StoreContext.discardRun(runId: String): RunStatus? = autocommit {
    update("UPDATE stent_runs SET discarded_at = COALESCE(discarded_at, $now) WHERE id = ? AND status = 'FAILED'", listOf(runId))
    query("SELECT status FROM stent_runs WHERE id = ?", listOf(runId)) { RunStatus.valueOf(it.getString(1)) }.firstOrNull()
}

internal fun StoreContext.deleteRun(runId: String): RunStatus? = tx {
    val status = query("SELECT status FROM stent_runs WHERE id = ? ${dialect.rowLock}", listOf(runId)) {
        RunStatus.valueOf(it.getString(1))
    }.firstOrNull() ?: return@tx null
    if (status.isFinished) deleteRunsIn(this, listOf(runId))
    status
}

// A small batch per transaction, oldest first; rows another transaction holds are skipped (PostgreSQL), so retention
// never waits for anyone, and claims never touch finished runs. Dead letters (FAILED, not discarded) stay until handled,
// and a run started within its queue's rate period stays while the rate limit counts it.
internal fun StoreContext.deleteFinishedRuns(beforeMs: Long, limit: Int): Int = tx {
    val ids = query(
        """SELECT id FROM stent_runs WHERE finished_at IS NOT NULL AND finished_at < ?
               AND (status <> 'FAILED' OR discarded_at IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM stent_queues q WHERE q.name = stent_runs.queue AND q.rate_period_ms IS NOT NULL
                               AND stent_runs.started_at > $now - q.rate_period_ms)
           ORDER BY finished_at LIMIT ? ${dialect.claimLock}""",
        listOf(beforeMs, limit),
    ) { it.getString(1) }
    deleteRunsIn(this, ids)
    ids.size
}

private fun StoreContext.deleteRunsIn(c: Connection, ids: List<String>) {
    if (ids.isEmpty()) return
    with(c) {
        val (records, recordArgs) = inList("run_id", ids)
        update("DELETE FROM stent_records WHERE $records", recordArgs)
        update("DELETE FROM stent_signals WHERE $records", recordArgs)
        val (runs, runArgs) = inList("id", ids)
        update("DELETE FROM stent_runs WHERE $runs", runArgs)
    }
}

internal fun StoreContext.getCached(key: String): String? = autocommit {
    query("SELECT result FROM stent_cache WHERE cache_key = ? AND expires_at > $now", listOf(key)) { it.getString(1) }.firstOrNull()
}

// The value stored first wins: a second computation that finishes later checkpoints the winner's value, so every run
// that read the key within its TTL saw one value.
internal fun StoreContext.checkpointCached(runId: String, fencingToken: Long, record: StoredRecord, key: String, ttlMs: Long): StoredRecord? = tx {
    if (!holdsLease(runId, fencingToken)) return@tx null
    update(
        """INSERT INTO stent_cache (cache_key, result, run_id, created_at, expires_at) VALUES (?, ?, ?, $now, $now + ?)
           ON CONFLICT (cache_key) DO UPDATE SET result = excluded.result, run_id = excluded.run_id, created_at = excluded.created_at,
               expires_at = excluded.expires_at WHERE stent_cache.expires_at <= excluded.created_at""",
        listOf(key, record.result, runId, ttlMs),
    )
    val stored = query("SELECT result FROM stent_cache WHERE cache_key = ?", listOf(key)) { it.getString(1) }.single()
    val written = StoredRecord(record.stepId, record.kind, record.status, stored, null, record.attempts, null, record.updatedAt)
    upsertRecord(runId, fencingToken, written)
    written
}

internal fun StoreContext.deleteExpiredCache(limit: Int): Int = autocommit {
    update(
        "DELETE FROM stent_cache WHERE cache_key IN (SELECT cache_key FROM stent_cache WHERE expires_at <= $now ORDER BY expires_at LIMIT ? ${dialect.claimLock})",
        listOf(limit),
    )
}

// A re-declared schedule keeps its next tick while its expression and zone stay the same (an application that declares
// its schedules at every start must not skip the tick it was down for), and keeps being paused.
internal fun StoreContext.upsertSchedule(s: ScheduleRecord) = autocommit {
    update(
        """INSERT INTO stent_schedules (name, cron, zone, workflow_name, input, queue, priority, catch_up, paused, next_fire_at,
               timeout_ms, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), $now, $now)
           ON CONFLICT (name) DO UPDATE SET workflow_name = excluded.workflow_name, input = excluded.input, queue = excluded.queue,
               priority = excluded.priority, catch_up = excluded.catch_up, timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at,
               next_fire_at = CASE WHEN stent_schedules.cron = excluded.cron AND stent_schedules.zone = excluded.zone
                                        AND stent_schedules.next_fire_at IS NOT NULL
                                   THEN stent_schedules.next_fire_at ELSE excluded.next_fire_at END,
               cron = excluded.cron, zone = excluded.zone""",
        listOf(s.name, s.cron, s.zone, s.workflowName, s.input, s.queue, s.priority, s.catchUp, s.paused, s.nextFireAt, s.timeoutMs),
    )
    wake(WakeUpMessage.WORK)
}

internal fun StoreContext.listSchedules(): List<ScheduleRecord> = autocommit {
    query("SELECT * FROM stent_schedules ORDER BY name", emptyList(), ::scheduleOf)
}

// Resuming a schedule that is not paused changes nothing (its due tick and catch-up stay).
internal fun StoreContext.setSchedulePaused(name: String, paused: Boolean, nextFireAt: Long?): Boolean = autocommit {
    if (paused) {
        update("UPDATE stent_schedules SET paused = TRUE, updated_at = $now WHERE name = ?", listOf(name))
    } else {
        update(
            "UPDATE stent_schedules SET paused = FALSE, next_fire_at = CAST(? AS BIGINT), updated_at = $now WHERE name = ? AND paused = TRUE",
            listOf(nextFireAt, name),
        )
    }
    query("SELECT 1 FROM stent_schedules WHERE name = ?", listOf(name)) { true }.isNotEmpty()
}

internal fun StoreContext.deleteSchedule(name: String): Boolean = autocommit {
    update("DELETE FROM stent_schedules WHERE name = ?", listOf(name)) == 1
}

// One transaction: the due schedules are locked (skipping those another worker fires), the runs of their ticks are
// inserted by id (a tick's id exists once), and the next tick is written; a worker killed halfway fires nothing.
internal fun StoreContext.fireSchedules(limit: Int, plan: (ScheduleRecord, Long) -> SchedulePlan, run: (ScheduleRecord, Long) -> NewRun): ScheduleFiring {
    val firing = tx {
        val dbNow = nowMs()
        val due = query(
            "SELECT * FROM stent_schedules WHERE paused = FALSE AND next_fire_at IS NOT NULL AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ? ${dialect.claimLock}",
            listOf(dbNow, limit),
            ::scheduleOf,
        )
        val started = ArrayList<NewRun>()
        for (s in due) {
            val p = plan(s, dbNow)
            val runs = p.ticks.map { run(s, it) }.distinctBy { it.id }
            if (runs.isNotEmpty()) {
                val inserted = insertRunsIn(this, runs)
                runs.filterTo(started) { it.id in inserted }
            }
            update(
                "UPDATE stent_schedules SET next_fire_at = CAST(? AS BIGINT), last_fire_at = COALESCE(CAST(? AS BIGINT), last_fire_at), updated_at = $now WHERE name = ?",
                listOf(p.nextFireAt, p.ticks.maxOrNull(), s.name),
            )
        }
        val next = query("SELECT MIN(next_fire_at) FROM stent_schedules WHERE paused = FALSE", emptyList()) { it.longOrNull(1) }.single()
        ScheduleFiring(started.size, next, dbNow, started)
    }
    if (firing.created > 0) wake(WakeUpMessage.WORK)
    return firing
}

internal fun queueLimitsOf(rs: ResultSet) = QueueLimitsRecord(
    rs.getString("name"), rs.intOrNull("concurrency"), rs.intOrNull("key_concurrency"), rs.intOrNull("rate_limit"),
    rs.longOrNull("rate_period_ms"), rs.getLong("updated_at"),
)

private fun scheduleOf(rs: ResultSet) = ScheduleRecord(
    rs.getString("name"), rs.getString("cron"), rs.getString("zone"), rs.getString("workflow_name"), rs.getString("input"),
    rs.getString("queue"), rs.getInt("priority"), rs.getInt("catch_up"), rs.getBoolean("paused"), rs.longOrNull("next_fire_at"),
    rs.longOrNull("last_fire_at"), rs.getLong("created_at"), rs.getLong("updated_at"), rs.longOrNull("timeout_ms"),
)
