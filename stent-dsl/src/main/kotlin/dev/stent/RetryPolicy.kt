package dev.stent

import kotlin.math.min
import kotlin.math.pow
import kotlin.random.Random
import kotlin.reflect.KClass
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.toJavaDuration

/**
 * How a failing step is retried: up to [maxAttempts] attempts (the first one included), waiting
 * `min(initialDelay * backoffFactor^(n-1), maxDelay)` ± [jitter] before retry `n`.
 *
 * An exception is retried when [shouldRetry] says so. By default every [Exception] is retried
 * except [NonRetryableException], [StentException] (Stent's own errors are never transient; a
 * step's own [StepTimeoutException] is the exception, and is retried) and the types named with
 * [Builder.nonRetryable]. [Error]s are never retried. A timeout inside the step body
 * (`withTimeout`) is an exception like any other and is retried; cancellation of the run itself
 * (unload, cancel, shutdown) stops the step without recording an attempt.
 *
 * Failed attempts are recorded, so the attempt count survives a crash. A back-off shorter than the
 * worker's in-memory wait threshold waits in memory; a longer one unloads the run, and any worker
 * resumes it when the back-off is over.
 *
 * Build one with [retryPolicy].
 */
public class RetryPolicy private constructor(
    /** Attempts in all, the first included; 1 means no retry. */
    public val maxAttempts: Int,
    /** The wait before the first retry. */
    @get:JvmSynthetic public val initialDelay: Duration,
    /** The factor each further wait grows by. */
    public val backoffFactor: Double,
    /** The longest wait between two attempts. */
    @get:JvmSynthetic public val maxDelay: Duration,
    /** The random spread added to each wait, as a fraction of it (0.1 = ±10 %). */
    public val jitter: Double,
    private val nonRetryable: List<KClass<out Throwable>>,
    private val retryIf: ((Throwable) -> Boolean)?,
) {
    /** [initialDelay] for Java callers (`getInitialDelay()`). */
    @get:JvmName("getInitialDelay")
    public val javaInitialDelay: java.time.Duration get() = initialDelay.toJavaDuration()

    /** [maxDelay] for Java callers (`getMaxDelay()`). */
    @get:JvmName("getMaxDelay")
    public val javaMaxDelay: java.time.Duration get() = maxDelay.toJavaDuration()

    /** True when a failure with [error] may be retried (if attempts remain). */
    public fun shouldRetry(error: Throwable): Boolean {
        if (error !is Exception) return false
        if (error is NonRetryableException) return false
        // Stent's own errors are never transient, but for a step's timeout: that attempt may just have been slow
        if (error is StentException && error !is StepTimeoutException) return false
        if (nonRetryable.any { it.isInstance(error) }) return false
        return retryIf?.invoke(error) ?: true
    }

    /**
     * The wait before attempt number [nextAttempt] (2 for the first retry), at most [maxDelay] and
     * never more than [TimeMath.MAX_DELAY], however large the factor or the attempt number.
     */
    @OptIn(InternalStentApi::class)
    @JvmSynthetic
    public fun delayBefore(nextAttempt: Int, random: Random = Random.Default): Duration {
        val n = (nextAttempt - 1).coerceAtLeast(1)
        val base = initialDelay.inWholeMilliseconds * backoffFactor.pow(n - 1) // may be +Infinity: min() below caps it
        val cap = min(TimeMath.delayMs(maxDelay), TimeMath.MAX_DELAY_MS).toDouble()
        val capped = min(base, cap)
        val spread = capped * jitter * (random.nextDouble() * 2 - 1)
        return (capped + spread).coerceIn(0.0, TimeMath.MAX_DELAY_MS.toDouble()).toLong().milliseconds
    }

    /** Builds a [RetryPolicy]; see [retryPolicy]. */
    @StentDsl
    public class Builder internal constructor() {
        /** Attempts in all, the first included (default 3). */
        public var maxAttempts: Int = 3

        /** Wait before the first retry (default 1 s); finite, not negative. */
        public var initialDelay: Duration = 1.seconds

        /** Growth factor of the wait (default 2.0). */
        public var backoffFactor: Double = 2.0

        /** Cap on one wait (default 60 s; [Duration.INFINITE] for no cap below [TimeMath.MAX_DELAY]). */
        public var maxDelay: Duration = 60.seconds

        /** Random spread as a fraction of the wait (default 0.1). */
        public var jitter: Double = 0.1

        private val nonRetryable = mutableListOf<KClass<out Throwable>>()
        private var retryIf: ((Throwable) -> Boolean)? = null

        /** Exceptions of these types (and subtypes) fail the step at once. */
        public fun nonRetryable(vararg types: KClass<out Throwable>) {
            nonRetryable += types
        }

        /** Retries only exceptions for which [predicate] is true (on top of the built-in exclusions). */
        public fun retryIf(predicate: (Throwable) -> Boolean) {
            retryIf = predicate
        }

        @OptIn(InternalStentApi::class)
        internal fun build(): RetryPolicy {
            requireArgument(maxAttempts >= 1) { "retryPolicy: maxAttempts must be at least 1, was $maxAttempts" }
            requireArgument(!initialDelay.isNegative() && initialDelay.isFinite()) {
                "retryPolicy: initialDelay must be finite and not negative, was $initialDelay"
            }
            requireArgument(backoffFactor >= 1.0 && backoffFactor.isFinite()) {
                "retryPolicy: backoffFactor must be a finite number of at least 1.0, was $backoffFactor"
            }
            requireArgument(maxDelay >= initialDelay) { "retryPolicy: maxDelay ($maxDelay) must be at least initialDelay ($initialDelay)" }
            requireArgument(jitter in 0.0..1.0) { "retryPolicy: jitter must be within 0.0..1.0, was $jitter" }
            return RetryPolicy(maxAttempts, initialDelay, backoffFactor, maxDelay, jitter, nonRetryable.toList(), retryIf)
        }
    }

    override fun toString(): String =
        "RetryPolicy(maxAttempts=$maxAttempts, initialDelay=$initialDelay, backoffFactor=$backoffFactor, maxDelay=$maxDelay, jitter=$jitter)"

    public companion object {
        /** 3 attempts, 1 s initial delay, ×2, at most 60 s, ±10 % jitter. */
        @JvmField
        public val DEFAULT: RetryPolicy = Builder().build()

        /** One attempt: a failure fails the step. */
        @JvmField
        public val NONE: RetryPolicy = Builder().apply { maxAttempts = 1 }.build()
    }
}

/** Builds a [RetryPolicy]: `retryPolicy { maxAttempts = 5; initialDelay = 2.seconds }`. */
@JvmSynthetic
public fun retryPolicy(block: RetryPolicy.Builder.() -> Unit): RetryPolicy = RetryPolicy.Builder().apply(block).build()

/**
 * Throw this (or a subclass) from a step to fail it at once, without further attempts.
 */
public open class NonRetryableException @JvmOverloads constructor(message: String? = null, cause: Throwable? = null) :
    RuntimeException(message, cause)
