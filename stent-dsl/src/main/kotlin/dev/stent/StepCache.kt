package dev.stent

import kotlin.time.Duration
import kotlin.time.toKotlinDuration

/**
 * A step's result shared across runs: the first run to compute the step under [key] stores its
 * result for [ttl]; a later step with the same key within the TTL, in any run and any worker,
 * records the stored result instead of running its body.
 *
 * Two runs that miss the cache at once both run the body (at-least-once), but only the first
 * result stored is kept: the other run records the winner's value, so every run sees one value
 * per key and TTL. Steps sharing a key must share the result type. A failed step caches nothing.
 */
public class StepCache(
    /** The cache key: 1 to 200 characters; include what the result depends on (`"fx:EUR:USD"`). */
    public val key: String,
    /** How long a stored result is used; [Duration.INFINITE] keeps it until it is deleted. */
    @get:JvmSynthetic public val ttl: Duration,
) {
    override fun toString(): String = "StepCache($key, ttl=$ttl)"

    public companion object {
        /** A cache entry [key] kept for [ttl], for Java callers. */
        @JvmStatic
        public fun of(key: String, ttl: java.time.Duration): StepCache = StepCache(key, ttl.toKotlinDuration())
    }
}
