package dev.stent.micrometer;

import dev.stent.Stent;
import dev.stent.StentEvent;
import dev.stent.StentWorker;
import dev.stent.WorkflowDefinition;
import dev.stent.exposed.Stents;
import dev.stent.java.FutureClient;
import dev.stent.java.Workers;
import dev.stent.java.Workflows;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Listeners and metrics from Java: the same calls. */
class JavaMetricsTest {
    @TempDir Path dir;

    @Test
    void aJavaListenerAndStentMetricsSeeAJavaWorkflow() throws Exception {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        List<String> heard = new CopyOnWriteArrayList<>();
        WorkflowDefinition<String, String> greet = Workflows.define("greet", String.class, String.class,
            (ctx, name) -> ctx.step("greet", String.class, () -> "hello " + name));
        try (Stent stent = Stents.sqlite(dir.resolve("stent.db").toString());
             AutoCloseable metrics = new StentMetrics(registry).bindTo(stent, Duration.ofSeconds(1));
             AutoCloseable listening = stent.addListener(event -> {
                 if (event instanceof StentEvent.RunFinished finished) heard.add(finished.getRunId() + " " + finished.getStatus());
             })) {
            FutureClient client = FutureClient.of(stent);
            try (StentWorker ignored = Workers.builder(stent).register(greet).listener(event -> {
                if (event instanceof StentEvent.RunEvent run) heard.add(event.getClass().getSimpleName());
            }).start()) {
                assertEquals("hello ana", client.start(greet, "ana", dev.stent.java.StartOptions.withId("g-1")).get(30, TimeUnit.SECONDS)
                    .result().get(30, TimeUnit.SECONDS));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!heard.contains("g-1 COMPLETED") && System.nanoTime() < deadline) Thread.sleep(20);
            assertEquals(List.of("RunClaimed", "StepStarted", "StepCompleted", "RunFinished", "g-1 COMPLETED"), heard);
            assertEquals(1.0, registry.find("stent.runs.finished").tags("workflow", "greet", "status", "completed").counter().count());
        }
    }
}
