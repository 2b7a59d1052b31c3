@file:OptIn(InternalStentApi::class)

package dev.stent

import kotlin.time.Duration
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.toKotlinDuration

/**
 * Limits of one queue, enforced by every worker's claim across all processes: at most
 * [concurrency] runs of the queue execute at once, at most [concurrencyPerKey] per partition key
 * (`start(partitionKey = "customer-42")`), and at most [rateLimit] runs start per [ratePeriod]
 * (over any window of that length). Null fields do not limit. Declare them with
 * `stentWorker { limit(queueLimits("payments") { … }) }` or `client.setQueueLimits(…)`; they are
 * stored, so every worker applies the same values, and changing them needs no migration.
 *
 * A run counts toward concurrency from its claim until it finishes, unloads or is released: a
 * run waiting in its worker's memory (a short sleep) keeps its place, a run that unloads gives it
 * back. The rate limit counts first starts; a run resuming after a wait does not start again.
 */
public class QueueLimits private constructor(
    public val queue: String,
    public val concurrency: Int?,
    public val concurrencyPerKey: Int?,
    public val rateLimit: Int?,
    @get:JvmSynthetic public val ratePeriod: Duration?,
) {
    /** [ratePeriod] for Java callers (`getRatePeriod()`), or null. */
    @get:JvmName("getRatePeriod")
    public val javaRatePeriod: java.time.Duration? get() = ratePeriod?.inWholeMilliseconds?.let(java.time.Duration::ofMillis)

    override fun toString(): String = "QueueLimits($queue, concurrency=$concurrency, perKey=$concurrencyPerKey, rate=$rateLimit/$ratePeriod)"

    /** Builds [QueueLimits]: Kotlin through [queueLimits], Java through [QueueLimits.builder]. */
    @StentDsl
    public class Builder internal constructor(private val queue: String) {
        /** Runs of the queue executing at once over all workers (1 to 1,000,000), or null for no limit. */
        public var concurrency: Int? = null

        /** Runs of one partition key executing at once (1 to 1,000,000), or null for no limit. Runs without a key are not limited by it. */
        public var concurrencyPerKey: Int? = null

        private var rate: Int? = null
        private var period: Duration? = null

        /** At most [starts] runs of the queue start in any window of [per] (1 ms to 1 day). */
        @JvmSynthetic
        public fun rateLimit(starts: Int, per: Duration): Builder = apply {
            rate = starts
            period = per
        }

        /** Java: see the Kotlin property [concurrency]. */
        public fun concurrency(limit: Int): Builder = apply { concurrency = limit }

        /** Java: see the Kotlin property [concurrencyPerKey]. */
        public fun concurrencyPerKey(limit: Int): Builder = apply { concurrencyPerKey = limit }

        /** Java: at most [starts] runs of the queue start in any window of [per]. */
        public fun rateLimit(starts: Int, per: java.time.Duration): Builder = rateLimit(starts, per.toKotlinDuration())

        public fun build(): QueueLimits {
            WorkflowDefinition.validateName("queue", queue)
            fun check(what: String, n: Int?) = requireArgument(n == null || n in 1..MAX_LIMIT) {
                "queue '$queue': $what must be within 1..$MAX_LIMIT (or unset for no limit), was $n"
            }
            check("concurrency", concurrency)
            check("concurrencyPerKey", concurrencyPerKey)
            check("rateLimit", rate)
            period?.let { p ->
                requireArgument(p.isFinite() && p >= 1.milliseconds && p <= 1.days) {
                    "queue '$queue': the rate limit's period must be within 1 ms..1 day, was $p"
                }
            }
            return QueueLimits(queue, concurrency, concurrencyPerKey, rate, period)
        }
    }

    public companion object {
        /** Java: `QueueLimits.builder("payments").concurrency(3).rateLimit(20, Duration.ofSeconds(1)).build()`. */
        @JvmStatic
        public fun builder(queue: String): Builder = Builder(queue)
    }
}

/** Limits of queue [queue]: `queueLimits("payments") { concurrency = 3; rateLimit(20, 1.seconds) }`. */
@JvmSynthetic
public fun queueLimits(queue: String, configure: QueueLimits.Builder.() -> Unit): QueueLimits = QueueLimits.builder(queue).apply(configure).build()

/** A queue as `client.listQueues()` shows it: its limits (null: none) and its unfinished runs now. */
public class QueueInfo internal constructor(
    public val queue: String,
    public val limits: QueueLimits?,
    public val pending: Long,
    public val running: Long,
    public val waiting: Long,
) {
    override fun toString(): String = "QueueInfo($queue, limits=$limits, pending=$pending, running=$running, waiting=$waiting)"
}

/** The largest concurrency or rate limit a queue can have. */
private const val MAX_LIMIT = 1_000_000

/** [QueueLimits] as the store keeps them. */
internal fun QueueLimits.toRecord(): dev.stent.store.QueueLimitsRecord =
    dev.stent.store.QueueLimitsRecord(queue, concurrency, concurrencyPerKey, rateLimit, ratePeriod?.inWholeMilliseconds)

/** A stored queue as [QueueInfo]. */
internal fun queueInfoOf(record: dev.stent.store.QueueRecord): QueueInfo = QueueInfo(
    record.name,
    record.limits?.let { l ->
        QueueLimits.builder(l.name).apply {
            concurrency = l.concurrency
            concurrencyPerKey = l.concurrencyPerKey
            if (l.rateLimit != null && l.ratePeriodMs != null) rateLimit(l.rateLimit!!, l.ratePeriodMs!!.milliseconds)
        }.build()
    },
    record.pending, record.running, record.waiting,
)

/** What `client.stats()` counts: runs by workflow and status, the oldest pending run, recent throughput. */
public class StentStats internal constructor(
    /** Runs by workflow, then status (a run waiting in its worker's memory counts as WAITING). */
    public val byWorkflow: Map<String, Map<RunStatus, Long>>,
    /** When the oldest PENDING run was created, or null when none is pending. */
    public val oldestPending: java.time.Instant?,
    /** Runs finished in the last minute, and in the last hour. */
    public val finishedLastMinute: Long,
    public val finishedLastHour: Long,
    /** The database clock when counted. */
    public val at: java.time.Instant,
) {
    /** Runs by status over every workflow. */
    public val byStatus: Map<RunStatus, Long>
        get() = byWorkflow.values.flatMap { it.entries }.groupBy({ it.key }, { it.value }).mapValues { (_, n) -> n.sum() }

    override fun toString(): String = "StentStats(byStatus=$byStatus, oldestPending=$oldestPending, finishedLastMinute=$finishedLastMinute)"
}
