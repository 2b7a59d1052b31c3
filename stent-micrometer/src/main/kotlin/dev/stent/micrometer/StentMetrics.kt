package dev.stent.micrometer

import dev.stent.Stent
import dev.stent.StentEvent
import dev.stent.StentListener
import dev.stent.java.FutureClient
import io.micrometer.core.instrument.Counter
import io.micrometer.core.instrument.DistributionSummary
import io.micrometer.core.instrument.Gauge
import io.micrometer.core.instrument.MeterRegistry
import io.micrometer.core.instrument.Tag
import io.micrometer.core.instrument.Tags
import io.micrometer.core.instrument.Timer
import org.slf4j.LoggerFactory
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong

/**
 * Stent's metrics in a Micrometer [registry], tagged by workflow (and queue, status, outcome), with
 * [commonTags] on every meter. Bind it to a `Stent` with [bindTo]: it listens to every run the
 * installation starts or executes, and reads the queues' counts on an interval for the gauges.
 *
 * | meter | type | tags |
 * | --- | --- | --- |
 * | `stent.runs.started` | counter | workflow, queue |
 * | `stent.runs.claimed` | counter | workflow, resumed |
 * | `stent.runs.finished` | counter | workflow, status, failure.kind |
 * | `stent.runs.duration` | timer | workflow, status |
 * | `stent.steps.duration` | timer (one per attempt) | workflow, outcome (completed, retrying, failed) |
 * | `stent.leases.lost` | counter | workflow |
 * | `stent.runs.released` | counter | workflow |
 * | `stent.claims.duration` | timer | (none) |
 * | `stent.claims.size` | distribution summary (runs) | (none) |
 * | `stent.queue.runs` | gauge | queue, state (pending, running, waiting) |
 */
public class StentMetrics @JvmOverloads constructor(
    private val registry: MeterRegistry,
    private val commonTags: Iterable<Tag> = emptyList(),
) {
    /**
     * Listens to [stent]'s runs and, every [gaugeInterval] (default 15 s), reads the unfinished runs of
     * each queue in one query for the `stent.queue.runs` gauges. Closing the handle stops both.
     */
    @JvmOverloads
    public fun bindTo(stent: Stent, gaugeInterval: java.time.Duration = java.time.Duration.ofSeconds(15)): AutoCloseable {
        require(!gaugeInterval.isNegative && !gaugeInterval.isZero) { "gaugeInterval must be positive, was $gaugeInterval" }
        val listening = stent.addListener(listener)
        val gauges = QueueGauges(FutureClient.of(stent), stent)
        val poller = Executors.newSingleThreadScheduledExecutor { r -> Thread(r, "stent-metrics-gauges").apply { isDaemon = true } }
        poller.scheduleWithFixedDelay({ if (!gauges.read()) poller.shutdown() }, 0, gaugeInterval.toMillis(), TimeUnit.MILLISECONDS)
        return AutoCloseable {
            listening.close()
            gauges.close()
            poller.shutdown() // a read in flight ends by itself (its result is dropped); close never waits for the database
        }
    }

    /** The `stent.queue.runs` gauges of one binding: removed from the registry when it closes or its Stent does. */
    private inner class QueueGauges(private val client: FutureClient, private val stent: Stent) {
        private val counts = ConcurrentHashMap<Pair<String, String>, AtomicLong>()
        private val registered = ConcurrentHashMap<Pair<String, String>, Gauge>()

        @Volatile
        private var closed = false

        /** Reads the queues once; false once the binding or its Stent is closed (the poller stops). */
        fun read(): Boolean {
            if (closed || stent.isClosed) {
                close()
                return false
            }
            try {
                val queues = client.listQueues().get(30, TimeUnit.SECONDS)
                if (closed) return false
                val seen = HashSet<Pair<String, String>>()
                for (q in queues) {
                    for ((state, n) in listOf("pending" to q.pending, "running" to q.running, "waiting" to q.waiting)) {
                        seen += q.queue to state
                        gauge(q.queue, state).set(n)
                    }
                }
                // a queue that has no unfinished run any more reads 0, not its last count
                counts.forEach { (key, value) -> if (key !in seen) value.set(0) }
            } catch (e: InterruptedException) {
                Thread.currentThread().interrupt()
                return false
            } catch (e: Exception) {
                if (closed || stent.isClosed) return false
                log.warn("stent metrics: reading the queues failed: {}", e.toString())
            }
            return true
        }

        private fun gauge(queue: String, state: String): AtomicLong = counts.computeIfAbsent(queue to state) { key ->
            AtomicLong().also { holder ->
                val gauge = Gauge.builder("stent.queue.runs", holder) { it.get().toDouble() }
                    .description("Unfinished runs of a queue by state, read on an interval")
                    .tags(Tags.of(commonTags).and("queue", queue, "state", state))
                    .register(registry)
                registered[key] = gauge
                // closed while registering: close() may have missed it
                if (closed) registry.remove(gauge)
            }
        }

        fun close() {
            closed = true
            registered.values.forEach(registry::remove)
            registered.clear()
            counts.clear()
        }
    }

    /** The meters met so far, by name and tags: an event looks its meter up here, not through a builder and the registry. */
    private val meters = ConcurrentHashMap<List<String>, Any>()

    private fun counter(name: String, description: String, vararg tags: String): Counter = meters.computeIfAbsent(listOf(name, *tags)) {
        Counter.builder(name).description(description).tags(Tags.of(commonTags).and(*tags)).register(registry)
    } as Counter

    private val claimSize: DistributionSummary by lazy {
        DistributionSummary.builder("stent.claims.size").description("Runs a claim statement returned").baseUnit("runs")
            .tags(Tags.of(commonTags)).register(registry)
    }

    private fun timer(name: String, description: String, vararg tags: String): Timer = meters.computeIfAbsent(listOf(name, *tags)) {
        Timer.builder(name).description(description).tags(Tags.of(commonTags).and(*tags)).register(registry)
    } as Timer

    /** Turns events into meters; public so an application can register it with a worker instead ([bindTo] covers the whole Stent). */
    public val listener: StentListener = StentListener { e ->
        when (e) {
            is StentEvent.RunStarted -> if (e.created) {
                counter("stent.runs.started", "Runs started by clients, parents, schedules", "workflow", e.workflowName, "queue", e.queue).increment()
            }
            is StentEvent.RunClaimed ->
                counter("stent.runs.claimed", "Claims of runs by workers", "workflow", e.workflowName, "resumed", e.resumed.toString()).increment()
            is StentEvent.RunFinished -> {
                val status = e.status.name.lowercase()
                val kind = e.failureKind?.name?.lowercase() ?: "none"
                counter("stent.runs.finished", "Runs finished", "workflow", e.workflowName, "status", status, "failure.kind", kind).increment()
                e.durationMillis?.let {
                    timer("stent.runs.duration", "From a run's first start to its finish", "workflow", e.workflowName, "status", status)
                        .record(it, TimeUnit.MILLISECONDS)
                }
            }
            is StentEvent.StepCompleted ->
                timer("stent.steps.duration", "Step attempts", "workflow", e.workflowName, "outcome", "completed").record(e.durationNanos, TimeUnit.NANOSECONDS)
            is StentEvent.StepFailed -> {
                val outcome = if (e.isRetrying) "retrying" else "failed"
                timer("stent.steps.duration", "Step attempts", "workflow", e.workflowName, "outcome", outcome).record(e.durationNanos, TimeUnit.NANOSECONDS)
            }
            is StentEvent.LeaseLost -> counter("stent.leases.lost", "Leases a worker lost", "workflow", e.workflowName).increment()
            is StentEvent.ClaimBatch -> {
                timer("stent.claims.duration", "Claim statements of workers, busy or idle").record(e.durationNanos, TimeUnit.NANOSECONDS)
                claimSize.record(e.size.toDouble())
            }
            is StentEvent.RunReleased -> counter("stent.runs.released", "Runs a worker gave back unfinished", "workflow", e.workflowName).increment()
            is StentEvent.StepStarted, is StentEvent.RunWaiting, is StentEvent.SignalReceived -> Unit
        }
    }

    private companion object {
        val log = LoggerFactory.getLogger("dev.stent.micrometer")
    }
}
