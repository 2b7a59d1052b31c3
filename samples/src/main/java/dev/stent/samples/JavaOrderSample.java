package dev.stent.samples;

import dev.stent.RunInfo;
import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.exposed.Stents;
import dev.stent.WorkflowDefinition;
import dev.stent.java.FutureClient;
import dev.stent.java.RetryPolicies;
import dev.stent.java.RunRef;
import dev.stent.java.StartOptions;
import dev.stent.java.WorkflowOptions;
import dev.stent.java.Workers;
import dev.stent.java.Workflows;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Collectors;

/** The order workflow of the quick start, written in plain Java: records, lambdas, builders and futures. */
public final class JavaOrderSample {
    public record OrderRequest(String id, long amount) {}
    public record Authorization(String code, long amount) {}
    public record Approval(String by) {}
    public record Receipt(String orderId, String authorization, String approvedBy) {}

    static Authorization authorize(OrderRequest req) {
        return new Authorization("auth-" + req.id(), req.amount());
    }

    static final WorkflowDefinition<OrderRequest, Receipt> ORDER = Workflows.define(
        "java-order", OrderRequest.class, Receipt.class,
        WorkflowOptions.builder()
            .retryPolicy(RetryPolicies.builder().maxAttempts(5).initialDelay(Duration.ofSeconds(1)).build())
            .build(),
        (ctx, req) -> {
            Authorization auth = ctx.step("authorize", Authorization.class, () -> authorize(req)); // checkpointed once
            ctx.sleep(Duration.ofSeconds(2)); // durable: a long sleep unloads the run
            Approval ok = ctx.awaitSignal("approval", Approval.class, Duration.ofDays(1));
            return ctx.step("ship", Receipt.class, () -> new Receipt(req.id(), auth.code(), ok.by()));
        });

    public static void main(String[] args) throws Exception {
        Path db = Path.of(args.length > 0 ? args[0] : "target/stent-java-sample.db");
        Files.deleteIfExists(db);
        try (Stent stent = Stents.sqlite(db.toString());
             StentWorker worker = Workers.builder(stent).register(ORDER).concurrency(32).unloadThreshold(Duration.ofSeconds(1)).start()) {
            FutureClient client = FutureClient.of(stent);
            RunRef<Receipt> run = client.start(ORDER, new OrderRequest("o-42", 1999), StartOptions.withId("o-42")).join();
            client.signal("o-42", "approval", new Approval("ana")).join();
            System.out.println(run.result().join());
            RunInfo info = run.describe().join();
            System.out.println("run " + info.getId() + ": " + info.getStatus() + ", steps: "
                + info.getRecords().stream().map(s -> s.getId() + "=" + s.getStatus()).collect(Collectors.joining(", ")));
        }
    }
}
