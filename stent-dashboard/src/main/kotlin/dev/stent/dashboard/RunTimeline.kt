package dev.stent.dashboard

import dev.stent.RecordInfo
import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunInfo
import java.time.Instant

/**
 * A run's records laid out in time, for the dashboard's timeline and `stent runs show`: each record
 * with when it began and ended. A step's record is written when the step ends, so it is taken to
 * begin when the record before it ended (exact for steps that run one after another, an upper bound
 * for parallel branches); a sleep or signal wait begins when it was recorded and ends when it was
 * resolved, or at its wake-up time while it still waits.
 */
public object RunTimeline {
    /** One record of [RunTimeline.of]. */
    public class Entry internal constructor(
        public val record: RecordInfo,
        public val start: Instant,
        public val end: Instant,
    ) {
        /** A sleep whose wake-up time has passed (its record keeps the status it was written with). */
        public val slept: Boolean get() = record.kind == RecordKind.SLEEP && record.wakeAt?.let { !it.isAfter(Instant.now()) } == true
    }

    @JvmStatic
    public fun of(run: RunInfo): List<Entry> {
        var previousEnd = run.startedAt ?: run.createdAt
        return run.records.map { r ->
            val created = r.createdAt ?: r.updatedAt
            // a step is recorded when it ends: it began when the record before it ended
            val start = if (r.kind == RecordKind.STEP) minOf(previousEnd, created) else created
            val waits = r.status == RecordStatus.WAITING || r.status == RecordStatus.RETRYING
            val end = maxOf(start, if (waits) r.wakeAt ?: r.updatedAt else r.updatedAt)
            previousEnd = maxOf(previousEnd, end) // a sleep ends at its wake-up time, though its record is not written again
            Entry(r, start, end)
        }
    }
}
