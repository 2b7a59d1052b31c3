package dev.stent.runtime.internal.worker

import dev.stent.StentEvent
import dev.stent.StentStoreException
import dev.stent.WorkerConfig
import dev.stent.runtime.internal.Cron
import dev.stent.runtime.internal.Listeners
import dev.stent.runtime.internal.StoreAccess
import dev.stent.store.NewRun
import dev.stent.toRecord
import kotlinx.coroutines.delay
import org.slf4j.Logger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * A worker's housekeeping: declares its queue limits before it claims, then fires due schedules
 * (each tick in one transaction that creates its run by id), deletes finished runs past the
 * retention age and expired cache entries, in small batches.
 */
internal class Maintenance(
    private val workerId: String,
    private val config: WorkerConfig,
    private val access: StoreAccess,
    private val listeners: Listeners,
    private val log: Logger,
    /** Fired when a virtual clock moves (the test kit), so due schedules fire at once. */
    private val clockMoved: dev.stent.runtime.internal.WakeUp? = null,
) {
    /** Stores the worker's queue limits, retrying until the database takes them or [stopping] says stop. */
    suspend fun declareLimits(stopping: () -> Boolean) {
        var backoff = 100.milliseconds
        for (limits in config.queueLimits) {
            val record = limits.toRecord()
            while (!stopping()) {
                try {
                    access.call("declaring the limits of queue '${limits.queue}'") { setQueueLimits(record) }
                    break
                } catch (e: UnsupportedOperationException) {
                    log.error("stent worker {}: this store cannot keep queue limits; queue '{}' runs without them", workerId, limits.queue)
                    break
                } catch (e: StentStoreException) {
                    // never claim before the limits are stored: runs of the queue could start past them
                    log.warn("stent worker {}: could not store the limits of queue '{}', retrying: {}", workerId, limits.queue, e.message)
                    delay(backoff)
                    backoff = (backoff * 2).coerceAtMost(5.seconds)
                }
            }
        }
    }

    suspend fun loop() {
        var nextRetention = 0L
        var nextCacheSweep = 0L
        while (true) {
            var pause = SCHEDULE_POLL_MS
            val moved = clockMoved?.arm()
            if (config.fireSchedules) {
                try {
                    val firing = access.call("firing schedules") { fireSchedules(SCHEDULE_BATCH, ::plan, ::tickRun) }
                    if (firing.created > 0) log.debug("stent worker {}: schedules started {} runs", workerId, firing.created)
                    for (run in firing.started) listeners.emit { StentEvent.RunStarted(run.id, run.workflowName, run.queue, created = true) }
                    firing.nextDueAt?.let { pause = (it - firing.dbNowMs).coerceIn(MIN_PAUSE_MS, SCHEDULE_POLL_MS) }
                } catch (e: StentStoreException) {
                    log.warn("stent worker {}: firing schedules failed, retrying: {}", workerId, e.message)
                }
            }
            val now = System.currentTimeMillis()
            val retention = config.retention
            if (retention != null && now >= nextRetention) {
                nextRetention = now + SWEEP_EVERY_MS
                sweep("deleting finished runs") { before -> deleteFinishedRuns(before - retention.inWholeMilliseconds, SWEEP_BATCH) }
            }
            if (now >= nextCacheSweep) {
                nextCacheSweep = now + SWEEP_EVERY_MS
                sweep("deleting expired cache entries") { deleteExpiredCache(SWEEP_BATCH) }
            }
            if (moved != null) clockMoved.awaitArmed(moved, pause.milliseconds) else delay(pause.milliseconds)
        }
    }

    /** Runs [batch] (given the database clock) until it deletes less than a batch, pausing between batches so claims go first. */
    private suspend fun sweep(what: String, batch: dev.stent.store.WorkflowStore.(Long) -> Int) {
        try {
            val now = access.call("reading the database clock") { dbNowMs() }
            var total = 0
            while (true) {
                val n = access.call(what) { batch(now) }
                total += n
                if (n < SWEEP_BATCH) break
                delay(SWEEP_PAUSE_MS.milliseconds)
            }
            if (total > 0) log.info("stent worker {}: {}: {}", workerId, what, total)
        } catch (e: StentStoreException) {
            log.warn("stent worker {}: {} failed, trying again later: {}", workerId, what, e.message)
        } catch (e: UnsupportedOperationException) {
            log.debug("stent worker {}: {} not supported by this store", workerId, what)
        }
    }

    private fun plan(schedule: dev.stent.store.ScheduleRecord, nowMs: Long) = try {
        Cron.of(schedule).plan(schedule.nextFireAt ?: nowMs, nowMs, schedule.catchUp)
    } catch (e: Exception) {
        // stored by a newer or broken writer: stop firing it rather than fail every schedule
        log.error("schedule '{}': cannot read cron '{}' in zone '{}': {}; it no longer fires", schedule.name, schedule.cron, schedule.zone, e.message)
        dev.stent.store.SchedulePlan(emptyList(), null)
    }

    private fun tickRun(schedule: dev.stent.store.ScheduleRecord, tickMs: Long) =
        NewRun(
            Cron.runId(schedule.name, tickMs), schedule.workflowName, schedule.input, schedule.queue, schedule.priority, 0,
            timeoutMs = schedule.timeoutMs,
        )

    private companion object {
        const val SCHEDULE_POLL_MS = 1_000L
        const val MIN_PAUSE_MS = 5L
        const val SCHEDULE_BATCH = 50
        const val SWEEP_EVERY_MS = 60_000L
        const val SWEEP_BATCH = 200
        const val SWEEP_PAUSE_MS = 50L
    }
}
