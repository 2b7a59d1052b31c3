package dev.stent.micrometer

import dev.stent.WorkflowFailedException
import dev.stent.codecOf
import dev.stent.exposed.Stents
import dev.stent.retryPolicy
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.doubles.shouldBeGreaterThan
import io.kotest.matchers.longs.shouldBeGreaterThan
import io.kotest.matchers.shouldBe
import io.micrometer.core.instrument.Tag
import io.micrometer.core.instrument.simple.SimpleMeterRegistry
import kotlinx.coroutines.delay
import java.nio.file.Files
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

class StentMetricsSpec : FunSpec({
    test("counts and timers after a known workload, and queue gauges read on an interval") {
        val registry = SimpleMeterRegistry()
        Stents.sqlite(Files.createTempDirectory("stent-metrics").resolve("stent.db").toString()).use { stent ->
            val binding = StentMetrics(registry, listOf(Tag.of("app", "shop"))).bindTo(stent, java.time.Duration.ofMillis(100))
            binding.use {
                val tries = AtomicInteger()
                val ok = workflow<Int, Int>("ok") { n -> step("double") { n * 2 } }
                val flaky = workflow<Int, Int>("flaky", { retryPolicy = retryPolicy { initialDelay = 10.milliseconds } }) { n ->
                    step("once") {
                        check(tries.incrementAndGet() > 1) { "first try fails" }
                        n
                    }
                }
                val broken = workflow<Int, Int>("broken", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ -> step("boom") { error("boom") } }
                val waits = workflow<Int, String>("waits", { queue = "slow" }) { _ -> awaitSignal("go", codecOf<String>()) }
                stentWorker(stent) {
                    listOf(ok, flaky, broken, waits).forEach { register(it) }
                    pollInterval = 50.milliseconds
                }.use {
                    repeat(3) { stent.client.start(ok, it).await(30.seconds) }
                    stent.client.start(flaky, 1).await(30.seconds)
                    shouldThrow<WorkflowFailedException> { stent.client.start(broken, 1).await(30.seconds) }
                    stent.client.start(waits, 1, id = "w")
                    var waiting = 0.0
                    for (i in 1..100) {
                        waiting = registry.find("stent.queue.runs").tags("queue", "slow", "state", "waiting").gauge()?.value() ?: 0.0
                        if (waiting == 1.0) break
                        delay(100.milliseconds)
                    }
                    waiting shouldBe 1.0
                }
                fun count(name: String, vararg tags: String) = registry.find(name).tags(*tags).counters().sumOf { it.count() }
                count("stent.runs.started", "workflow", "ok", "queue", "default", "app", "shop") shouldBe 3.0
                count("stent.runs.finished", "workflow", "ok", "status", "completed") shouldBe 3.0
                count("stent.runs.finished", "workflow", "flaky", "status", "completed") shouldBe 1.0
                count("stent.runs.finished", "workflow", "broken", "status", "failed", "failure.kind", "step") shouldBe 1.0
                registry.find("stent.steps.duration").tags("workflow", "flaky", "outcome", "retrying").timer()!!.count() shouldBe 1L
                registry.find("stent.steps.duration").tags("workflow", "flaky", "outcome", "completed").timer()!!.count() shouldBe 1L
                registry.find("stent.steps.duration").tags("workflow", "broken", "outcome", "failed").timer()!!.count() shouldBe 1L
                registry.find("stent.steps.duration").tags("workflow", "ok").timer()!!.count() shouldBe 3L
                registry.find("stent.runs.duration").tags("workflow", "ok", "status", "completed").timer()!!.count() shouldBe 3L
                count("stent.runs.claimed", "workflow", "waits") shouldBeGreaterThan 0.0
                // every claim statement is timed; every run is claimed at least once, by a statement or at its start
                // (a start beside a worker with a free slot), so the claims heard add up to at least one per run
                registry.find("stent.claims.duration").timer()!!.count() shouldBeGreaterThan 0L
                (count("stent.runs.claimed") >= 6.0) shouldBe true
            }
            // closing the binding takes its gauges out of the registry (a stale queue count is worse than none)
            registry.find("stent.queue.runs").gauges() shouldBe emptyList()
        }
    }
})
