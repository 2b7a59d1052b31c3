package dev.stent.opentelemetry;

import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.WorkflowDefinition;
import dev.stent.exposed.Stents;
import dev.stent.java.FutureClient;
import dev.stent.java.StartOptions;
import dev.stent.java.Workers;
import dev.stent.java.Workflows;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Scope;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Tracing from Java: a future started inside a span carries it to the run, although the call runs on another thread. */
class JavaTracingTest {
    @TempDir Path dir;

    @Test
    void aRunStartedThroughAFutureIsPartOfTheCallersTrace() throws Exception {
        InMemorySpanExporter exporter = InMemorySpanExporter.create();
        try (SdkTracerProvider provider = SdkTracerProvider.builder().addSpanProcessor(SimpleSpanProcessor.create(exporter)).build()) {
            OpenTelemetrySdk otel = OpenTelemetrySdk.builder().setTracerProvider(provider).build();
            WorkflowDefinition<String, String> greet = Workflows.define("greet", String.class, String.class,
                (ctx, name) -> ctx.step("greet", String.class, () -> "hello " + name + " in " + Span.current().getSpanContext().getTraceId()));
            try (Stent stent = Stents.sqlite(dir.resolve("stent.db").toString());
                 AutoCloseable tracing = new OpenTelemetryTracing(otel).bindTo(stent);
                 StentWorker ignored = Workers.builder(stent).register(greet).start()) {
                FutureClient client = FutureClient.of(stent);
                Span request = otel.getTracer("test").spanBuilder("GET /greet").startSpan();
                CompletableFuture<String> result;
                try (Scope ignoredScope = request.makeCurrent()) {
                    result = client.start(greet, "ana", StartOptions.withId("g-1")).get(30, TimeUnit.SECONDS).result();
                } finally {
                    request.end();
                }
                String traceId = request.getSpanContext().getTraceId();
                assertEquals("hello ana in " + traceId, result.get(30, TimeUnit.SECONDS));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (exporter.getFinishedSpanItems().stream().noneMatch(s -> s.getName().equals("run greet")) && System.nanoTime() < deadline) {
                    Thread.sleep(20);
                }
                SpanData run = exporter.getFinishedSpanItems().stream().filter(s -> s.getName().equals("run greet")).findFirst().orElseThrow();
                assertEquals(request.getSpanContext().getSpanId(), run.getParentSpanId());
                assertEquals(traceId, run.getTraceId());
            }
        }
    }
}
