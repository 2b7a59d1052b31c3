package dev.stent.samples.spring;

import dev.stent.RunInfo;
import dev.stent.WorkflowDefinition;
import dev.stent.java.FutureClient;
import dev.stent.java.StartOptions;
import dev.stent.java.Workflows;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;

import java.time.Duration;

/**
 * The order workflow as a Spring Boot application: {@code POST /orders} starts a run,
 * {@code POST /orders/{id}/approval} sends its approval, {@code GET /orders/{id}} shows it. The
 * Stent starter opens the store from {@code stent.*} (SQLite here; a DataSource for PostgreSQL)
 * and runs every {@link WorkflowDefinition} bean on a worker that starts and stops with the application.
 */
@SpringBootApplication
public class OrdersApplication {
    public record Order(String id, long cents) {}
    public record Approval(String by) {}
    public record Started(String runId) {}
    public record OrderStatus(String runId, String status, String output) {}

    /** A workflow is a bean: the starter's worker registers it. */
    @Bean
    WorkflowDefinition<Order, String> order() {
        return Workflows.define("order", Order.class, String.class, (ctx, order) -> {
            String auth = ctx.step("authorize", String.class, () -> "auth-" + order.id());
            Approval ok = ctx.awaitSignal("approval", Approval.class, Duration.ofDays(1));
            return ctx.step("ship", String.class, () -> "order " + order.id() + " shipped (" + auth + ", approved by " + ok.by() + ")");
        });
    }

    @RestController
    static class Orders {
        private final FutureClient client;
        private final WorkflowDefinition<Order, String> order;

        Orders(FutureClient client, WorkflowDefinition<Order, String> order) {
            this.client = client;
            this.order = order;
        }

        @PostMapping("/orders")
        Started start(@RequestBody Order body) {
            return new Started(client.start(order, body, StartOptions.withId(body.id())).join().getId());
        }

        @PostMapping("/orders/{id}/approval")
        void approve(@PathVariable("id") String id, @RequestBody Approval approval) {
            client.signal(id, "approval", approval).join();
        }

        @GetMapping("/orders/{id}")
        OrderStatus show(@PathVariable("id") String id) {
            RunInfo run = client.describe(id).join();
            return new OrderStatus(run.getId(), run.getStatus().name(), run.getOutput());
        }
    }

    public static void main(String[] args) {
        SpringApplication.run(OrdersApplication.class, args);
    }
}
