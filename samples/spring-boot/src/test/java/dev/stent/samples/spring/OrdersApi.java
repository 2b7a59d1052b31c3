package dev.stent.samples.spring;

import org.springframework.core.env.Environment;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The sample application as its users drive it, over HTTP; the tests start the real application
 * on a random port, on a SQLite file ({@link OrdersOnSqliteTest}) and on PostgreSQL through the
 * application's DataSource ({@link OrdersOnPostgresTest}).
 */
final class OrdersApi {
    private OrdersApi() {}

    static final HttpClient HTTP = HttpClient.newHttpClient();

    static HttpResponse<String> call(Environment env, String method, String path, String json) throws Exception {
        var request = HttpRequest.newBuilder(URI.create("http://localhost:" + env.getProperty("local.server.port") + path))
            .header("Content-Type", "application/json")
            .method(method, json == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(json))
            .build();
        return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
    }

    /** Starts order [id] through the REST endpoint, approves it, and waits until the run shows it shipped. */
    static void orderShipsThroughTheEndpoints(Environment env, String id) throws Exception {
        HttpResponse<String> started = call(env, "POST", "/orders", "{\"id\":\"" + id + "\",\"cents\":1200}");
        assertEquals(200, started.statusCode(), started.body());
        assertTrue(started.body().contains("\"runId\":\"" + id + "\""), started.body());
        assertEquals(200, call(env, "POST", "/orders/" + id + "/approval", "{\"by\":\"ana\"}").statusCode());
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        String shown;
        do {
            shown = call(env, "GET", "/orders/" + id, null).body();
            if (shown.contains("COMPLETED")) break;
            Thread.sleep(50);
        } while (System.nanoTime() < deadline);
        assertTrue(shown.contains("\"status\":\"COMPLETED\""), shown);
        assertTrue(shown.contains("order " + id + " shipped (auth-" + id + ", approved by ana)"), shown);
    }

    static void healthIsUp(Environment env) throws Exception {
        String health = call(env, "GET", "/actuator/health", null).body();
        assertTrue(health.endsWith("\"status\":\"UP\"}"), health);
        assertTrue(health.contains("\"stent\":{\"details\":{\"worker\":"), "the Stent indicator, with its worker, is part of health: " + health);
        assertTrue(health.matches(".*\"stent\":\\{\"details\":\\{[^}]*\\},\"status\":\"UP\"\\}.*"), "the Stent indicator is UP: " + health);
    }
}
