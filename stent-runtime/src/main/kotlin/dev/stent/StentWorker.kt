package dev.stent

import dev.stent.internal.worker.WorkerEngine
import kotlinx.coroutines.runBlocking
import java.lang.management.ManagementFactory
import java.util.UUID
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.toKotlinDuration

/**
 * A worker: claims runs of the workflows it registered from the store and executes them, up to
 * [concurrency][Builder.concurrency] at once. Start one with [stentWorker]; any number of workers
 * in any number of processes can share one database.
 *
 * Lifecycle: running from creation; [shutdown] stops claiming, lets in-flight runs finish or reach
 * a durable wait for up to a grace period, then releases the remaining leases so another worker
 * resumes those runs at once. [close] is `shutdown()` with the configured grace.
 */
public class StentWorker internal constructor(private val engine: WorkerEngine) : AutoCloseable {
    /** The worker id written as lease owner. */
    public val id: String get() = engine.id

    /** How many runs this worker executes right now. */
    public val activeRuns: Int get() = engine.activeCount

    /** Stops claiming, waits up to [grace] for in-flight runs, then releases the rest. Idempotent. */
    @JvmSynthetic
    public suspend fun shutdown(grace: Duration = engine.config.shutdownGrace) {
        engine.shutdown(grace)
    }

    /** Blocking [shutdown] with a `java.time` grace period, for Java callers. */
    public fun close(grace: java.time.Duration) {
        runBlocking { engine.shutdown(grace.toKotlinDuration()) }
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

        /** How long a claim lasts without a heartbeat (default 30 s). */
        public var leaseDuration: Duration = 30.seconds

        /** How often all held leases are renewed, in one statement (default a third of the lease). */
        public var heartbeatInterval: Duration? = null

        /** How long [shutdown] waits for in-flight runs before releasing them (default 10 s). */
        public var shutdownGrace: Duration = 10.seconds

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

        /** Registers [definition]; this worker claims runs of its name. */
        public fun register(definition: WorkflowDefinition<*, *>) {
            val existing = definitions.putIfAbsent(definition.name, definition)
            if (existing != null && existing !== definition) {
                throw StentConfigurationException(
                    "two workflows named '${definition.name}' registered with one worker: workflow names must be unique",
                )
            }
        }

        internal fun build(): WorkerConfig {
            if (definitions.isEmpty()) {
                throw StentConfigurationException("stentWorker: register at least one workflow, e.g. register(order)")
            }
            require(concurrency >= 1) { "stentWorker: concurrency must be at least 1, was $concurrency" }
            require(leaseDuration >= 1.seconds) { "stentWorker: leaseDuration must be at least 1 s, was $leaseDuration" }
            val heartbeat = heartbeatInterval ?: (leaseDuration / 3)
            require(heartbeat.isPositive() && heartbeat < leaseDuration) {
                "stentWorker: heartbeatInterval ($heartbeat) must be positive and shorter than leaseDuration ($leaseDuration)"
            }
            require(maxClaims >= 1) { "stentWorker: maxClaims must be at least 1, was $maxClaims" }
            require(pollInterval.isPositive()) { "stentWorker: pollInterval must be positive" }
            require(!unloadThreshold.isNegative()) { "stentWorker: unloadThreshold must not be negative" }
            queues?.let { q ->
                require(q.isNotEmpty()) { "stentWorker: queues must name at least one queue, or be null for every queue" }
                q.forEach { WorkflowDefinition.validateName("queue", it) }
            }
            return WorkerConfig(
                workerId, definitions.toMap(), concurrency, queues?.toSet(), leaseDuration, heartbeat,
                shutdownGrace, pollInterval, unloadThreshold, maxClaims,
            )
        }

        private companion object {
            fun defaultWorkerId(): String {
                val runtime = ManagementFactory.getRuntimeMXBean().name // pid@host
                return "$runtime-${UUID.randomUUID().toString().take(8)}"
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
)

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
