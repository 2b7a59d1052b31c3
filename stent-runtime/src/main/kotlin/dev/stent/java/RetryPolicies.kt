package dev.stent.java

import dev.stent.RetryPolicy
import dev.stent.retryPolicy
import java.time.Duration
import kotlin.time.toKotlinDuration

/**
 * Builds [RetryPolicy]s from Java:
 * `RetryPolicies.builder().maxAttempts(5).initialDelay(Duration.ofSeconds(1)).nonRetryable(IllegalArgumentException.class).build()`.
 * Defaults and semantics are those of [RetryPolicy].
 */
public object RetryPolicies {
    @JvmStatic
    public fun builder(): Builder = Builder()

    /** A fluent [RetryPolicy] builder. */
    public class Builder internal constructor() {
        private var maxAttempts = RetryPolicy.DEFAULT.maxAttempts
        private var initialDelay: Duration = Duration.ofMillis(RetryPolicy.DEFAULT.initialDelay.inWholeMilliseconds)
        private var backoffFactor = RetryPolicy.DEFAULT.backoffFactor
        private var maxDelay: Duration = Duration.ofMillis(RetryPolicy.DEFAULT.maxDelay.inWholeMilliseconds)
        private var jitter = RetryPolicy.DEFAULT.jitter
        private val nonRetryable = mutableListOf<Class<out Throwable>>()

        /** Attempts in all, the first included. */
        public fun maxAttempts(n: Int): Builder = apply { maxAttempts = n }

        /** Wait before the first retry. */
        public fun initialDelay(d: Duration): Builder = apply { initialDelay = d }

        /** Growth factor of the wait. */
        public fun backoffFactor(f: Double): Builder = apply { backoffFactor = f }

        /** Cap on one wait. */
        public fun maxDelay(d: Duration): Builder = apply { maxDelay = d }

        /** Random spread as a fraction of the wait. */
        public fun jitter(j: Double): Builder = apply { jitter = j }

        /** Exception types that fail the step at once. */
        public fun nonRetryable(vararg types: Class<out Throwable>): Builder = apply { nonRetryable += types }

        public fun build(): RetryPolicy = retryPolicy {
            maxAttempts = this@Builder.maxAttempts
            initialDelay = this@Builder.initialDelay.toKotlinDuration()
            backoffFactor = this@Builder.backoffFactor
            maxDelay = this@Builder.maxDelay.toKotlinDuration()
            jitter = this@Builder.jitter
            nonRetryable(*this@Builder.nonRetryable.map { it.kotlin }.toTypedArray())
        }
    }
}
