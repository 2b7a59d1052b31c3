package dev.stent.dashboard;

import dev.stent.Stent;
import dev.stent.StentStats;
import dev.stent.WorkflowDefinition;
import dev.stent.exposed.Stents;
import dev.stent.java.FutureClient;
import dev.stent.java.StartOptions;
import dev.stent.java.Workflows;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The dashboard and the counts it shows, from Java. */
class JavaDashboardTest {
    @TempDir Path dir;

    @Test
    void aJavaApplicationServesTheDashboardOfItsStent() throws Exception {
        WorkflowDefinition<String, String> greet = Workflows.define("greet", String.class, String.class,
            (ctx, name) -> ctx.step("greet", String.class, () -> "hello " + name));
        try (Stent stent = Stents.sqlite(dir.resolve("stent.db").toString());
             StentDashboard dashboard = StentDashboard.start(stent, 0)) {
            FutureClient client = FutureClient.of(stent);
            client.start(greet, "ana", StartOptions.withId("j-1")).get(30, TimeUnit.SECONDS); // no worker: it stays PENDING
            StentStats stats = client.stats().get(30, TimeUnit.SECONDS);
            assertEquals(Long.valueOf(1), stats.getByWorkflow().get("greet").get(dev.stent.RunStatus.PENDING));
            HttpResponse<String> page = HttpClient.newHttpClient()
                .send(HttpRequest.newBuilder(URI.create(dashboard.getUrl() + "runs/j-1")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, page.statusCode());
            assertTrue(page.body().contains("PENDING"), page.body());
        }
    }
}
