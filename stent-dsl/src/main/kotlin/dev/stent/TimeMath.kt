package dev.stent

import java.time.Instant
import kotlin.time.Duration
import kotlin.time.Duration.Companion.days

/**
 * Saturating time arithmetic. Every stored wake-up time, deadline and delay in Stent goes through
 * here, so no duration or instant, however extreme, overflows a `Long` or a database `BIGINT`.
 *
 * - A finite duration longer than [MAX_DELAY] (1,000 years) counts as [MAX_DELAY].
 * - An instant after [MAX_EPOCH_MS] (9999-12-31T23:59:59.999Z) counts as that instant; one before
 *   the epoch counts as the epoch (it is in the past either way).
 * - [Duration.INFINITE] is for the caller to interpret: "no timer" for sleeps and signal waits.
 */
@InternalStentApi
public object TimeMath {
    /** The longest delay Stent stores: 365,000 days (about 1,000 years). */
    public val MAX_DELAY: Duration = 365_000.days

    /** [MAX_DELAY] in milliseconds. */
    public const val MAX_DELAY_MS: Long = 365_000L * 86_400_000L

    /** The latest time Stent stores, 9999-12-31T23:59:59.999Z, in epoch milliseconds. */
    public const val MAX_EPOCH_MS: Long = 253_402_300_799_999L

    /** [d] in whole milliseconds, at most [MAX_DELAY_MS]; [d] must not be negative. [Duration.INFINITE] gives [MAX_DELAY_MS]. */
    public fun delayMs(d: Duration): Long {
        require(!d.isNegative()) { "negative duration $d" }
        return if (d.isInfinite()) MAX_DELAY_MS else d.inWholeMilliseconds.coerceAtMost(MAX_DELAY_MS)
    }

    /** [epochMs] + [delayMs], within 0..[MAX_EPOCH_MS]. */
    public fun plus(epochMs: Long, delayMs: Long): Long {
        val sum = epochMs + delayMs
        // overflow only when both have the same sign and the sum's differs
        val overflowed = ((epochMs xor sum) and (delayMs xor sum)) < 0
        return if (overflowed) (if (delayMs > 0) MAX_EPOCH_MS else 0L) else sum.coerceIn(0L, MAX_EPOCH_MS)
    }

    /** [epochMs] + [d], saturated; null when [d] is infinite (no timer). */
    public fun wakeAt(epochMs: Long, d: Duration): Long? = if (d.isInfinite()) null else plus(epochMs, delayMs(d))

    /** [instant] as epoch milliseconds within 0..[MAX_EPOCH_MS] (`Instant.MAX` included). */
    public fun epochMs(instant: Instant): Long = when {
        instant.epochSecond >= MAX_EPOCH_MS / 1000 -> MAX_EPOCH_MS
        instant.epochSecond < 0 -> 0L
        else -> instant.toEpochMilli().coerceAtMost(MAX_EPOCH_MS)
    }
}
