package dev.stent.samples.guide;

import dev.stent.FailureKind;
import dev.stent.QueueLimits;
import dev.stent.RunInfo;
import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.StepCache;
import dev.stent.WorkflowDefinition;
import dev.stent.java.FutureClient;
import dev.stent.java.StartOptions;
import dev.stent.java.Workers;
import dev.stent.java.WorkflowOptions;
import dev.stent.java.Workflows;

import java.time.Duration;
import java.time.ZoneId;

/**
 * The Java code of docs/queues.md. It compiles with the build, and DocsFromSamplesSpec checks that
 * the page shows it as written here; nothing runs it.
 */
public final class JavaQueuesSnippets {
    public record Charge(String customer, long cents) {}

    static double rate(String pair) { return 1.08; }

    static String charge(Charge charge, String key) { return "ch_" + key.hashCode(); }

    static final WorkflowDefinition<Charge, String> CHARGE = Workflows.define("java-charge", Charge.class, String.class,
        WorkflowOptions.builder().queue("payments").build(), (ctx, c) -> {
            double fx = ctx.step("fx-rate", Double.class, StepCache.of("fx:EUR", Duration.ofHours(1)), () -> rate("EUR"));
            return ctx.step("charge", String.class, () -> charge(new Charge(c.customer(), (long) (c.cents() * fx)), ctx.getRunId()));
        });

    static StentWorker worker(Stent stent) {
        QueueLimits payments = QueueLimits.builder("payments").concurrency(3).concurrencyPerKey(1).rateLimit(20, Duration.ofSeconds(1)).build();
        return Workers.builder(stent).register(CHARGE).limit(payments).retention(Duration.ofDays(30)).start();
    }

    static void operate(FutureClient client) {
        client.start(CHARGE, new Charge("c-42", 1999), StartOptions.builder().partitionKey("c-42").build()).join();
        for (RunInfo run : client.deadLetters(FailureKind.STEP).join()) {
            client.retry(run.getId()).join();
        }
        client.schedule("java-nightly", "0 3 * * *", CHARGE, new Charge("house", 0), ZoneId.of("Europe/Paris"), 2).join();
    }
}
