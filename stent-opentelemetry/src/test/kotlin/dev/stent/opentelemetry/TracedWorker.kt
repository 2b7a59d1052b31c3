package dev.stent.opentelemetry

import dev.stent.exposed.Stents
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.opentelemetry.sdk.OpenTelemetrySdk
import io.opentelemetry.sdk.common.CompletableResultCode
import io.opentelemetry.sdk.trace.SdkTracerProvider
import io.opentelemetry.sdk.trace.data.SpanData
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor
import io.opentelemetry.sdk.trace.export.SpanExporter
import kotlinx.coroutines.runBlocking
import java.io.File
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** The workflow both JVMs know: step "b" blocks until the test creates the file `go`. */
fun tracedWorkflow(dir: File) = workflow<String, String>("traced") { input ->
    val a = step("a") { executed(dir, "a"); "a" }
    val b = step("b") {
        executed(dir, "b")
        while (!File(dir, "go").exists()) Thread.sleep(50)
        "b"
    }
    val c = step("c") { executed(dir, "c"); "c" }
    "$input $a$b$c"
}

private fun executed(dir: File, step: String) = File(dir, "exec.log").appendText("$step ${ProcessHandle.current().pid()}\n")

/** One line per ended span, written as it ends (a worker killed with `kill -9` keeps what it wrote). */
class FileSpanExporter(private val file: File) : SpanExporter {
    override fun export(spans: Collection<SpanData>): CompletableResultCode {
        synchronized(this) {
            file.appendText(spans.joinToString("") { SpanLine.of(it).text + "\n" })
        }
        return CompletableResultCode.ofSuccess()
    }

    override fun flush(): CompletableResultCode = CompletableResultCode.ofSuccess()

    override fun shutdown(): CompletableResultCode = CompletableResultCode.ofSuccess()
}

/** What the test reads of a span another JVM ended. */
data class SpanLine(val traceId: String, val spanId: String, val parentSpanId: String, val name: String, val resumed: String) {
    val text: String get() = listOf(traceId, spanId, parentSpanId, name, resumed).joinToString("\t")

    companion object {
        fun of(s: SpanData) = SpanLine(
            s.traceId, s.spanId, s.parentSpanId, s.name,
            s.attributes.get(io.opentelemetry.api.common.AttributeKey.booleanKey("stent.run.resumed"))?.toString() ?: "-",
        )

        fun parse(line: String) = line.split("\t").let { SpanLine(it[0], it[1], it[2], it[3], it[4]) }
    }
}

/** A worker JVM: args are the SQLite path and the test's folder; its spans go to `spans-<pid>.txt` there. */
fun main(args: Array<String>) = runBlocking {
    val dir = File(args[1])
    val provider = SdkTracerProvider.builder()
        .addSpanProcessor(SimpleSpanProcessor.create(FileSpanExporter(File(dir, "spans-${ProcessHandle.current().pid()}.txt"))))
        .build()
    val otel = OpenTelemetrySdk.builder().setTracerProvider(provider).build()
    Stents.sqlite(args[0]).use { stent ->
        OpenTelemetryTracing(otel).bindTo(stent).use {
            stentWorker(stent) {
                register(tracedWorkflow(dir))
                leaseDuration = 1.seconds
                pollInterval = 100.milliseconds
            }.use {
                println("READY")
                while (true) kotlinx.coroutines.delay(1000)
            }
        }
    }
}
