package dev.stent.runtime.internal

import com.cronutils.model.CronType
import com.cronutils.model.definition.CronDefinitionBuilder
import com.cronutils.model.time.ExecutionTime
import com.cronutils.parser.CronParser
import dev.stent.store.SchedulePlan
import dev.stent.store.ScheduleRecord
import java.time.Instant
import java.time.ZoneId
import java.time.ZonedDateTime

/**
 * A cron expression read by cron-utils: five fields (Unix: minute, hour, day of month, month, day
 * of week) or six with seconds first (Spring), in a time zone, daylight saving time included.
 */
internal class Cron private constructor(private val time: ExecutionTime, private val zone: ZoneId) {
    // Ticks fall on whole seconds; cron-utils keeps the milliseconds of the time it is given, so times are
    // rounded to whole seconds first: down for "after" (a tick after 13.2 s is one after 13 s), up for "before".

    /** The first tick strictly after [afterMs], or null when there is none. */
    fun next(afterMs: Long): Long? = time.nextExecution(at(Math.floorDiv(afterMs, 1000L))).orElse(null)?.toInstant()?.toEpochMilli()

    /** The last tick strictly before [beforeMs], or null. */
    private fun previous(beforeMs: Long): Long? =
        time.lastExecution(at(Math.floorDiv(beforeMs + 999, 1000L))).orElse(null)?.toInstant()?.toEpochMilli()

    private fun at(second: Long) = ZonedDateTime.ofInstant(Instant.ofEpochSecond(second), zone)

    /**
     * The ticks to start at [nowMs] for a schedule due since [dueAt], oldest first, and the next tick
     * after now. A tick less than [LATE_MS] old is late, not missed, and always starts, as does the
     * newest due tick; of older ones, up to [catchUp] start (newest first), the rest are skipped.
     */
    fun plan(dueAt: Long, nowMs: Long, catchUp: Int): SchedulePlan {
        val ticks = ArrayList<Long>()
        var missed = 0
        var t: Long? = previous(nowMs + 1) // the newest tick at or before now
        while (t != null && t >= dueAt) {
            val late = t >= nowMs - LATE_MS || ticks.isEmpty()
            if (!late && missed++ >= catchUp) break
            ticks += t
            t = previous(t)
        }
        if (ticks.isEmpty()) ticks += dueAt // the due tick itself (a clock that moved back; never lose it)
        return SchedulePlan(ticks.reversed(), next(nowMs))
    }

    companion object {
        private val unix = CronParser(CronDefinitionBuilder.instanceDefinitionFor(CronType.UNIX))
        private val spring = CronParser(CronDefinitionBuilder.instanceDefinitionFor(CronType.SPRING53))

        /** Parses [expression]; throws IllegalArgumentException with cron-utils' reason when it is not valid. */
        fun parse(expression: String, zone: ZoneId): Cron {
            val fields = expression.trim().split(Regex("\\s+")).size
            val parser = when (fields) {
                5 -> unix
                6 -> spring
                else -> throw IllegalArgumentException("it has $fields fields; use 5 (minute hour day month weekday) or 6 (second first)")
            }
            return Cron(ExecutionTime.forCron(parser.parse(expression.trim()).validate()), zone)
        }

        /** How long after its time a tick still counts as late rather than missed. */
        const val LATE_MS = 60_000L

        fun of(schedule: ScheduleRecord): Cron = parse(schedule.cron, ZoneId.of(schedule.zone))

        /** The id of the run of [schedule]'s tick at [tickMs]: the tick is part of it, so it starts once. */
        fun runId(schedule: String, tickMs: Long): String = "schedule:$schedule@${Instant.ofEpochMilli(tickMs)}"
    }
}
