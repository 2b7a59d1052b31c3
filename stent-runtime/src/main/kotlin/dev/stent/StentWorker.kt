package dev.stent

import dev.stent.runtime.internal.worker.WorkerEngine
import kotlinx.coroutines.runBlocking
import java.lang.management.ManagementFactory
import java.util.UUID
import kotlin.time.Duration
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.hours
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.toKotlinDuration

/**
 * A worker: claims runs of the workflows it registered from the store and executes them, up to
 * [concurrency][Builder.concurrency] at once. Start one with [stentWorker]; any number of workers
 * in any number of processes can share one database.
 *
 * Lifecycle: running from creation; [shutdown] stops claiming, lets in-flight runs finish or reach
 * a durable wait for up to a grace period, then stops the rest (their step bodies are interrupted)
 * and releases their leases so another worker resumes those runs at once. [close] is `shutdown()`
 * with the configured grace.
 *
 * Stop is bounded: `shutdown(grace)` and [close] return within `grace + stopTimeout + 2 s`, even
 * when a step body ignores interruption or the database hangs. Such a run is abandoned: nothing
 * its body returns is recorded, and its lease is left to expire, after which another worker
 * resumes it.
 */
public class StentWorker internal constructor(private val engine: WorkerEngine) : AutoCloseable {
    /** The worker id written as lease owner. */
    public val id: String get() = engine.id

    /** How many runs this worker has loaded right now: executing, or waiting in memory. */
    public val activeRuns: Int get() = engine.activeCount

    /**
     * Stops claiming, waits up to [grace] for in-flight runs, then stops and releases the rest.
     * Returns within `grace + stopTimeout + 2 s`. Idempotent. A negative grace counts as zero, an
     * infinite one as the configured [Builder.shutdownGrace].
     */
    @JvmSynthetic
    public suspend fun shutdown(grace: Duration = engine.config.shutdownGrace) {
        engine.shutdown(boundedGrace(grace))
    }

    /** Blocking [shutdown] with a `java.time` grace period, for Java callers. */
    public fun close(grace: java.time.Duration) {
        runBlocking { engine.shutdown(boundedGrace(grace.toKotlinDuration())) }
    }

    private fun boundedGrace(grace: Duration): Duration = when {
        grace.isNegative() -> Duration.ZERO
        grace.isInfinite() -> engine.config.shutdownGrace
        else -> grace
    }

    /** Blocking [shutdown] with the configured grace period. */
    override fun close() {
        runBlocking { engine.shutdown(engine.config.shutdownGrace) }
    }

    /** Configuration of a [StentWorker]. */
    @StentDsl
    public class Builder internal constructor() {
        internal val definitions = LinkedHashMap<String, WorkflowDefinition<*, *>>()

        /** The id written as lease owner (default: host, pid and a random suffix). */
        public var workerId: String = defaultWorkerId()

        /** Runs executed at once (default 32). Runs that are unloaded (WAITING) do not count. */
        public var concurrency: Int = 32

        /** Queues to claim from; null (the default) claims from every queue. */
        public var queues: Set<String>? = null

        /** How long a claim lasts without a heartbeat (default 30 s; 1 s to 1 day). */
        public var leaseDuration: Duration = 30.seconds

        /** How often all held leases are renewed, in one statement (default a third of the lease). */
        public var heartbeatInterval: Duration? = null

        /** How long [shutdown] waits for in-flight runs before stopping and releasing them (default 10 s; finite). */
        public var shutdownGrace: Duration = 10.seconds

        /**
         * How long a stopped run (cancelled, past its deadline, or stopped by shutdown) may take to
         * unwind after its step body was interrupted. A body still running then is abandoned: its
         * slot is freed, nothing it returns is recorded, a cancelled run goes CANCELLED, and any
         * other run's lease is left to expire (default 5 s; positive, finite).
         */
        public var stopTimeout: Duration = 5.seconds

        /** Longest pause between two claims when idle; in-process starts wake the worker at once (default 500 ms). */
        public var pollInterval: Duration = 500.milliseconds

        /**
         * A run whose every branch waits durably, and whose earliest wake-up is further away than
         * this, is unloaded (WAITING); nearer wake-ups wait in memory (default 5 s).
         */
        public var unloadThreshold: Duration = 5.seconds

        /**
         * The poison guard: a run claimed more than this many times without finishing, unloading
         * or being released cleanly (its worker keeps dying) goes FAILED (default 10).
         */
        public var maxClaims: Int = 10

        /**
         * Runs that wait in memory at once (default 1,000): a run whose every branch waits for a
         * near wake-up gives its slot back and stays loaded; past this many, the one waiting longest
         * unloads. 0 unloads every such wait at once.
         */
        public var maxWaitingInMemory: Int = 1_000

        /**
         * Step bodies of one run that execute at once (default 64): the parallel branches of a run
         * (`async { step(…) { … } }`) run their bodies concurrently up to this, blocking or not.
         */
        public var maxParallelStepsPerRun: Int = 64

        /**
         * Step bodies this worker executes at once, over all its runs (default 256). They run on
         * threads made for blocking: virtual threads on JDK 21 and newer, else a slice of the IO pool.
         */
        public var maxParallelSteps: Int = 256

        internal val queueLimits = LinkedHashMap<String, QueueLimits>()

        /**
         * Declares [limits] for their queue: stored when the worker starts (before its first claim), so
         * every worker applies them. Workers that declare different limits for one queue overwrite each
         * other's: declare each queue's limits in one place.
         */
        public fun limit(limits: QueueLimits) {
            queueLimits[limits.queue] = limits
        }

        /**
         * Finished runs older than this are deleted with their records and signals, in small batches,
         * by this worker (every worker that sets it takes part). Null (the default) keeps them.
         */
        public var retention: Duration? = null

        /** Whether this worker fires schedules (default true): any number of workers may, each tick starts one run. */
        public var fireSchedules: Boolean = true

        internal val listeners = ArrayList<StentListener>()

        /** Hears the events of the runs this worker executes (the Stent's listeners hear them too); see [StentListener]. */
        public fun listener(listener: StentListener) {
            listeners += listener
        }

        internal val stepStubs = HashMap<String, suspend StepScope.() -> Any?>()

        /**
         * Runs [body] instead of the body of step [stepId] in workflow [workflowName] (the test kit's
         * stubs); its result is recorded with the step's codec, like the real body's.
         */
        @InternalStentApi
        public fun stubStep(workflowName: String, stepId: String, body: suspend StepScope.() -> Any?) {
            stepStubs[WorkerConfig.stubKey(workflowName, stepId)] = body
        }

        /** Registers [definition]; this worker claims runs of its name. */
        public fun register(definition: WorkflowDefinition<*, *>) {
            val existing = definitions.putIfAbsent(definition.name, definition)
            if (existing != null && existing !== definition) {
                throw StentConfigurationException(
                    "two workflows named '${definition.name}' registered with one worker: workflow names must be unique",
                )
            }
        }

        @OptIn(InternalStentApi::class)
        internal fun build(): WorkerConfig {
            if (definitions.isEmpty()) {
                throw StentConfigurationException("stentWorker: register at least one workflow, e.g. register(order)")
            }
            WorkflowDefinition.validateName("worker id", workerId)
            requireArgument(concurrency in 1..MAX_CONCURRENCY) { "stentWorker: concurrency must be within 1..$MAX_CONCURRENCY, was $concurrency" }
            requireArgument(leaseDuration >= 1.seconds && leaseDuration <= 1.days) {
                "stentWorker: leaseDuration must be within 1 s..1 day, was $leaseDuration"
            }
            val heartbeat = heartbeatInterval ?: (leaseDuration / 3)
            requireArgument(heartbeat.isPositive() && heartbeat < leaseDuration) {
                "stentWorker: heartbeatInterval ($heartbeat) must be positive and shorter than leaseDuration ($leaseDuration)"
            }
            requireArgument(maxClaims >= 1) { "stentWorker: maxClaims must be at least 1, was $maxClaims" }
            requireArgument(maxWaitingInMemory in 0..MAX_WAITING_IN_MEMORY) {
                "stentWorker: maxWaitingInMemory must be within 0..$MAX_WAITING_IN_MEMORY, was $maxWaitingInMemory"
            }
            requireArgument(maxParallelSteps in 1..MAX_CONCURRENCY) {
                "stentWorker: maxParallelSteps must be within 1..$MAX_CONCURRENCY, was $maxParallelSteps"
            }
            requireArgument(maxParallelStepsPerRun in 1..maxParallelSteps) {
                "stentWorker: maxParallelStepsPerRun must be within 1..maxParallelSteps ($maxParallelSteps), was $maxParallelStepsPerRun"
            }
            requireArgument(pollInterval.isPositive() && pollInterval <= 1.hours) {
                "stentWorker: pollInterval must be positive and at most 1 hour, was $pollInterval"
            }
            requireArgument(!unloadThreshold.isNegative()) { "stentWorker: unloadThreshold must not be negative, was $unloadThreshold" }
            requireArgument(!shutdownGrace.isNegative() && shutdownGrace.isFinite()) {
                "stentWorker: shutdownGrace must be finite and not negative, was $shutdownGrace"
            }
            requireArgument(stopTimeout.isPositive() && stopTimeout.isFinite()) {
                "stentWorker: stopTimeout must be positive and finite, was $stopTimeout"
            }
            retention?.let { r ->
                requireArgument(r.isPositive()) { "stentWorker: retention must be positive (or null to keep finished runs), was $r" }
            }
            queues?.let { q ->
                requireArgument(q.isNotEmpty()) { "stentWorker: queues must name at least one queue, or be null for every queue" }
                q.forEach { WorkflowDefinition.validateName("queue", it) }
            }
            return WorkerConfig(
                workerId, definitions.toMap(), concurrency, queues?.toSet(), leaseDuration, heartbeat,
                shutdownGrace, pollInterval, unloadThreshold, maxClaims, stopTimeout, maxParallelStepsPerRun, maxParallelSteps,
                maxWaitingInMemory, queueLimits.values.toList(), retention?.takeUnless { it.isInfinite() }, fireSchedules, listeners.toList(),
                stepStubs.toMap(),
            )
        }

        private companion object {
            const val MAX_CONCURRENCY = 10_000
            const val MAX_WAITING_IN_MEMORY = 1_000_000

            fun defaultWorkerId(): String {
                val runtime = ManagementFactory.getRuntimeMXBean().name // pid@host
                return "${runtime.take(180)}-${UUID.randomUUID().toString().take(8)}"
            }
        }
    }
}

/** A built worker configuration. */
internal class WorkerConfig(
    val workerId: String,
    val definitions: Map<String, WorkflowDefinition<*, *>>,
    val concurrency: Int,
    val queues: Set<String>?,
    val leaseDuration: Duration,
    val heartbeatInterval: Duration,
    val shutdownGrace: Duration,
    val pollInterval: Duration,
    val unloadThreshold: Duration,
    val maxClaims: Int,
    val stopTimeout: Duration,
    val maxParallelStepsPerRun: Int,
    val maxParallelSteps: Int,
    val maxWaitingInMemory: Int,
    val queueLimits: List<QueueLimits> = emptyList(),
    val retention: Duration? = null,
    val fireSchedules: Boolean = true,
    val listeners: List<StentListener> = emptyList(),
    /** Step bodies replaced by the test kit, by [stubKey]. */
    val stepStubs: Map<String, suspend StepScope.() -> Any?> = emptyMap(),
) {
    companion object {
        fun stubKey(workflowName: String, stepId: String) = "$workflowName\u0000$stepId"
    }
}

/**
 * Starts a worker on [stent]:
 * ```
 * stentWorker(stent) { register(order); concurrency = 32 }.use { … }
 * ```
 */
@JvmSynthetic
public fun stentWorker(stent: Stent, configure: StentWorker.Builder.() -> Unit): StentWorker {
    val config = StentWorker.Builder().apply(configure).build()
    return StentWorker(WorkerEngine(stent, config).also { it.start() })
}
