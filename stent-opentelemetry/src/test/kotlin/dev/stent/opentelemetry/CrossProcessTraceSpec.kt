package dev.stent.opentelemetry

import dev.stent.exposed.Stents
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldContainExactly
import io.kotest.matchers.shouldBe
import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.seconds

class CrossProcessTraceSpec : FunSpec({
    fun startWorker(db: String, dir: File): Process {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val cp = System.getProperty("surefire.test.class.path") ?: System.getProperty("java.class.path")
        val out = File(dir, "worker-${System.nanoTime()}.out")
        val p = ProcessBuilder(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", cp, "dev.stent.opentelemetry.TracedWorkerKt", db, dir.path)
            .redirectErrorStream(true).redirectOutput(out).start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
        while (!out.readText().contains("READY")) {
            check(p.isAlive) { "worker exited early:\n${out.readText()}" }
            check(System.nanoTime() < deadline) { "worker did not start:\n${out.readText()}" }
            Thread.sleep(50)
        }
        return p
    }

    fun waitFor(what: String, condition: () -> Boolean) {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
        while (!condition()) {
            check(System.nanoTime() < deadline) { "timed out waiting until $what" }
            Thread.sleep(50)
        }
    }

    test("a run started in one JVM, executed in a second and resumed in a third after kill -9 of the second is one trace") {
        val dir = Files.createTempDirectory("stent-otel-xjvm").toFile()
        val db = File(dir, "stent.db").path
        val exec = File(dir, "exec.log")
        TestTelemetry().use { otel ->
            Stents.sqlite(db).use { stent ->
                OpenTelemetryTracing(otel.sdk).bindTo(stent).use {
                    // this JVM only starts the run, inside its request's span
                    val request = otel.sdk.getTracer("test").spanBuilder("POST /orders").startSpan()
                    val run = request.makeCurrent().use { stent.client.start(tracedWorkflow(dir), "order", id = "x-1") }
                    request.end()
                    val first = startWorker(db, dir)
                    val second: Process
                    try {
                        waitFor("the first worker runs step b") { exec.exists() && exec.readLines().any { it.startsWith("b ") } }
                        first.destroyForcibly()
                        first.waitFor(30, TimeUnit.SECONDS)
                        File(dir, "go").createNewFile()
                        second = startWorker(db, dir)
                    } finally {
                        first.destroyForcibly()
                    }
                    try {
                        run.await(60.seconds) shouldBe "order abc"
                        val secondSpans = File(dir, "spans-${second.pid()}.txt")
                        waitFor("the second worker ends its run span") { secondSpans.exists() && secondSpans.readText().contains("run traced") }
                    } finally {
                        second.destroyForcibly()
                        second.waitFor(30, TimeUnit.SECONDS)
                    }
                    val firstSpans = File(dir, "spans-${first.pid()}.txt").readLines().map(SpanLine::parse)
                    val secondSpans = File(dir, "spans-${second.pid()}.txt").readLines().map(SpanLine::parse)
                    val trace = request.spanContext.traceId
                    // the killed worker ended step a (step b and its run span died with it)
                    firstSpans.map { it.name } shouldContainExactly listOf("step a")
                    firstSpans.single().traceId shouldBe trace
                    // the resuming worker: a new execution under the request's span, steps b and c under it, a replayed
                    val resumed = secondSpans.single { it.name == "run traced" }
                    resumed.traceId shouldBe trace
                    resumed.parentSpanId shouldBe request.spanContext.spanId
                    resumed.resumed shouldBe "true"
                    secondSpans.filter { it.name.startsWith("step") }.map { it.name } shouldContainExactly listOf("step b", "step c")
                    secondSpans.filter { it.name.startsWith("step") }.forEach {
                        it.traceId shouldBe trace
                        it.parentSpanId shouldBe resumed.spanId
                    }
                    // and step b really ran in both workers
                    exec.readLines().filter { it.startsWith("b ") }.map { it.substringAfter(' ') } shouldBe listOf("${first.pid()}", "${second.pid()}")
                }
            }
        }
    }
})
