package dev.stent.opentelemetry

import dev.stent.RunStatus
import dev.stent.codecOf
import dev.stent.exposed.Stents
import dev.stent.retryPolicy
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldContainExactlyInAnyOrder
import io.kotest.matchers.shouldBe
import io.kotest.matchers.shouldNotBe
import io.opentelemetry.api.trace.Span
import io.opentelemetry.api.trace.SpanKind
import io.opentelemetry.api.trace.StatusCode
import io.opentelemetry.sdk.OpenTelemetrySdk
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter
import io.opentelemetry.sdk.trace.SdkTracerProvider
import io.opentelemetry.sdk.trace.data.SpanData
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor
import kotlinx.coroutines.delay
import java.nio.file.Files
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** An SDK that keeps every ended span in memory. */
class TestTelemetry : AutoCloseable {
    val exporter: InMemorySpanExporter = InMemorySpanExporter.create()
    private val provider = SdkTracerProvider.builder().addSpanProcessor(SimpleSpanProcessor.create(exporter)).build()
    val sdk: OpenTelemetrySdk = OpenTelemetrySdk.builder().setTracerProvider(provider).build()
    val spans: List<SpanData> get() = exporter.finishedSpanItems

    fun named(name: String): List<SpanData> = spans.filter { it.name == name }

    override fun close() = provider.close()
}

class TracingSpec : FunSpec({
    test("a run's executions and steps are spans of its starter's trace; a child nests under its parent; a signal links its sender") {
        TestTelemetry().use { otel ->
            Stents.sqlite(Files.createTempDirectory("stent-otel").resolve("stent.db").toString()).use { stent ->
                val tracing = OpenTelemetryTracing(otel.sdk)
                tracing.bindTo(stent).use {
                    val tracer = otel.sdk.getTracer("test")
                    val tries = AtomicInteger()
                    val child = workflow<String, String>("child") { name -> step("greet") { "hello $name" } }
                    val parent = workflow<String, String>("parent", { retryPolicy = retryPolicy { initialDelay = 10.milliseconds } }) { name ->
                        // the step's span is current in its body: spans the body makes nest under it
                        val inBody = step("flaky") {
                            check(tries.incrementAndGet() > 1) { "first try fails" }
                            Span.current().spanContext.spanId
                        }
                        val greeting = startChild(child, name, id = "kid").await()
                        val approval = awaitSignal("approve", codecOf<String>())
                        "$greeting $approval $inBody"
                    }
                    stentWorker(stent) {
                        register(parent)
                        register(child)
                        pollInterval = 50.milliseconds
                        unloadThreshold = 0.seconds // every wait unloads: the parent runs in several executions
                    }.use {
                        val checkout = tracer.spanBuilder("checkout").startSpan()
                        val run = checkout.makeCurrent().use { stent.client.start(parent, "ana", id = "order-1") }
                        checkout.end()
                        for (i in 1..300) {
                            if (stent.client.describe("order-1").waitingForSignals == setOf("approve")) break
                            delay(20.milliseconds)
                        }
                        val approver = tracer.spanBuilder("approve").startSpan()
                        approver.makeCurrent().use { stent.client.signal("order-1", "approve", "ok", codecOf<String>()) }
                        approver.end()
                        val result = run.await(30.seconds)
                        val flakyId = result.substringAfterLast(' ')

                        for (i in 1..100) if (otel.named("run parent").none { it.attributes.get(OUTCOME) == "completed" }) delay(20.milliseconds)
                        val trace = checkout.spanContext.traceId
                        otel.spans.filter { it.name != "approve" }.map { it.traceId }.toSet() shouldBe setOf(trace)
                        val parentRuns = otel.named("run parent")
                        parentRuns.forEach {
                            it.parentSpanId shouldBe checkout.spanContext.spanId
                            it.kind shouldBe SpanKind.CONSUMER
                        }
                        parentRuns.last().attributes.get(OUTCOME) shouldBe "completed"
                        // (released: a child's outcome arrived while the parent unloaded, so it went back to the queue at once)
                        val outcomes = parentRuns.map { it.attributes.get(OUTCOME) }.toSet()
                        (outcomes - setOf("unloaded", "released", "completed")) shouldBe emptySet()
                        outcomes.contains("unloaded") shouldBe true
                        parentRuns.last().attributes.get(io.opentelemetry.api.common.AttributeKey.booleanKey("stent.run.resumed")) shouldBe true
                        val steps = otel.spans.filter { it.name == "step flaky" }
                        steps.map { it.status.statusCode } shouldContainExactlyInAnyOrder listOf(StatusCode.ERROR, StatusCode.UNSET)
                        steps.single { it.status.statusCode == StatusCode.UNSET }.spanId shouldBe flakyId
                        steps.forEach { step -> parentRuns.map { it.spanId }.contains(step.parentSpanId) shouldBe true }
                        // the child's execution is a child of the parent's execution that started it
                        val childRun = otel.named("run child").single()
                        parentRuns.map { it.spanId }.contains(childRun.parentSpanId) shouldBe true
                        otel.named("step greet").single().parentSpanId shouldBe childRun.spanId
                        // the execution that took the signal links the span that sent it
                        val links = parentRuns.flatMap { it.links }.map { it.spanContext.spanId }
                        links shouldBe listOf(approver.spanContext.spanId)
                    }
                    // every execution's span ended: none is left open in this process
                    tracing.openExecutions shouldBe 0
                }
            }
        }
    }

    test("a failed run's span is an error; a run started outside any span begins its own trace") {
        TestTelemetry().use { otel ->
            Stents.sqlite(Files.createTempDirectory("stent-otel").resolve("stent.db").toString()).use { stent ->
                val tracing = OpenTelemetryTracing(otel.sdk)
                tracing.bindTo(stent).use {
                    val broken = workflow<String, String>("broken", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ -> step("boom") { error("boom") } }
                    stentWorker(stent) {
                        register(broken)
                        pollInterval = 50.milliseconds
                    }.use {
                        stent.client.start(broken, "", id = "b-1")
                        for (i in 1..300) if (stent.client.describe("b-1").status != RunStatus.FAILED) delay(20.milliseconds)
                        for (i in 1..100) if (otel.named("run broken").isEmpty()) delay(20.milliseconds)
                    }
                    val run = otel.named("run broken").single()
                    run.status.statusCode shouldBe StatusCode.ERROR
                    run.attributes.get(OUTCOME) shouldBe "failed"
                    run.parentSpanContext.isValid shouldBe false
                    val step = otel.named("step boom").single()
                    step.parentSpanId shouldBe run.spanId
                    step.events.map { it.name } shouldBe listOf("exception")
                    run.traceId shouldNotBe null
                    tracing.openExecutions shouldBe 0
                }
            }
        }
    }
})

private val OUTCOME = io.opentelemetry.api.common.AttributeKey.stringKey("stent.outcome")
