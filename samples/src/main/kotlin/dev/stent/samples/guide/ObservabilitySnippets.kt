package dev.stent.samples.guide

import dev.stent.Stent
import dev.stent.StentEvent
import dev.stent.micrometer.StentMetrics
import dev.stent.opentelemetry.OpenTelemetryTracing
import io.micrometer.core.instrument.MeterRegistry
import io.opentelemetry.api.OpenTelemetry
import org.slf4j.LoggerFactory

// The code of docs/observability.md. It compiles with the build, and DocsFromSamplesSpec checks that
// the page shows it as written here; nothing runs it.

private val auditLog = LoggerFactory.getLogger("audit")

fun listen(stent: Stent): AutoCloseable = stent.addListener { event ->
    when (event) {
        is StentEvent.StepFailed -> if (!event.isRetrying) auditLog.warn("step {} of run {} failed: {}", event.stepId, event.runId, event.failure)
        is StentEvent.RunFinished -> auditLog.info("run {} {} after {} ms", event.runId, event.status, event.durationMillis)
        else -> Unit
    }
}

fun metrics(stent: Stent, registry: MeterRegistry): AutoCloseable = StentMetrics(registry).bindTo(stent)

fun traces(stent: Stent, openTelemetry: OpenTelemetry): AutoCloseable = OpenTelemetryTracing(openTelemetry).bindTo(stent)
