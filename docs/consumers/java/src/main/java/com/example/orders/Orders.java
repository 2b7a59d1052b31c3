package com.example.orders;

import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.WorkflowDefinition;
import dev.stent.exposed.Stents;
import dev.stent.java.FutureClient;
import dev.stent.java.RunRef;
import dev.stent.java.Workers;
import dev.stent.java.Workflows;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** A Java application on Stent: one workflow, a worker, and a client, on a SQLite file. */
public final class Orders {
    public record Order(String id, long cents) {}
    public record Approval(String by) {}

    static final WorkflowDefinition<Order, String> ORDER = Workflows.define("order", Order.class, String.class, (ctx, order) -> {
        String auth = ctx.step("authorize", String.class, () -> "auth-" + order.id());
        Approval ok = ctx.awaitSignal("approval", Approval.class, Duration.ofDays(1));
        return ctx.step("ship", String.class, () -> "order " + order.id() + " shipped (" + auth + ", approved by " + ok.by() + ")");
    });

    public static void main(String[] args) throws Exception {
        Path db = Path.of("target/orders.db");
        Files.deleteIfExists(db);
        try (Stent stent = Stents.sqlite(db.toString());
             StentWorker worker = Workers.builder(stent).register(ORDER).start()) {
            FutureClient client = FutureClient.of(stent);
            RunRef<String> run = client.start(ORDER, new Order("o-7", 1200)).join();
            client.signal(run.getId(), "approval", new Approval("ana")).join();
            // the Kotlin standard library Stent runs on: the version Stent is built with, whatever else the build brings
            System.out.println(run.result().join() + " on Kotlin " + kotlin.KotlinVersion.CURRENT);
        }
    }
}
