package dev.stent.test.javatest;

import dev.stent.RecordInfo;
import dev.stent.RetryPolicy;
import dev.stent.RunHistory;
import dev.stent.WorkflowDefinition;
import dev.stent.WorkflowReplayer;
import dev.stent.java.RetryPolicies;
import dev.stent.java.RunRef;
import dev.stent.java.Workflows;
import dev.stent.test.StentExtension;
import dev.stent.test.StentTestEnvironment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.time.Instant;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The test kit from Java: the JUnit 5 extension, a 30-day sleep, a stubbed step, time moved by hand, versions, continue-as-new, the replayer. */
class JavaTestKitTest {
    record Invoice(String customer, long cents) {}

    /** Reminds after 30 days, charges (a step the test stubs), and on the new path of "receipts" sends a receipt. */
    static final WorkflowDefinition<Invoice, String> INVOICE = Workflows.define("java-invoice", Invoice.class, String.class, (ctx, invoice) -> {
        ctx.sleep(Duration.ofDays(30));
        String charge = ctx.step("charge", String.class, RetryPolicies.builder().maxAttempts(3).initialDelay(Duration.ofHours(1)).maxDelay(Duration.ofDays(1)).build(),
            () -> { throw new IllegalStateException("no payment service in tests"); });
        if (ctx.patched("receipts")) ctx.run("receipt", () -> {});
        return charge + " for " + invoice.customer();
    });

    /** Counts down by continuing as new, one day apart. */
    static final WorkflowDefinition<Integer, String> COUNTDOWN = Workflows.define("java-countdown", Integer.class, String.class, (ctx, n) -> {
        if (n == 0) return "liftoff";
        ctx.sleep(Duration.ofDays(1));
        return ctx.continueAsNew(n - 1);
    });

    @RegisterExtension
    final StentExtension stent = StentExtension.create(env -> env
        .register(INVOICE, COUNTDOWN)
        .stubStep(INVOICE, "charge", () -> "charged")
        .setStartTime(Instant.parse("2027-01-01T00:00:00Z")));

    @Test
    void aThirtyDaySleepPassesOnTheVirtualClock() {
        StentTestEnvironment env = stent.env();
        RunRef<String> run = env.getFutures().start(INVOICE, new Invoice("ann", 1200)).join();
        assertEquals("charged for ann", env.result(run));
        assertTrue(!env.getNow().isBefore(Instant.parse("2027-01-31T00:00:00Z")), "30 days passed: " + env.getNow());
        List<RecordInfo> records = env.recordsOf(run.getId());
        assertTrue(records.stream().anyMatch(r -> r.getId().equals("version:receipts")), "the version marker is recorded: " + records);
        assertTrue(records.stream().anyMatch(r -> r.getId().equals("receipt")), "a new run takes the new path");
    }

    @Test
    void timeMovesByHand(StentTestEnvironment env) {
        RunRef<String> run = env.getFutures().start(INVOICE, new Invoice("bob", 500)).join();
        env.advanceTime(Duration.ofDays(29));
        assertEquals("WAITING", env.getFutures().describe(run.getId()).join().getStatus().name());
        env.advanceTime(Duration.ofDays(1));
        assertEquals("COMPLETED", env.getFutures().describe(run.getId()).join().getStatus().name());
    }

    @Test
    void continueAsNewFromJava() {
        StentTestEnvironment env = stent.env();
        RunRef<String> run = env.getFutures().start(COUNTDOWN, 3).join();
        assertEquals("liftoff", env.result(run));
        assertEquals(run.getId() + "~2", env.getFutures().describe(run.getId()).join().getContinuedAs());
    }

    @Test
    void historiesReplayFromJava() {
        StentTestEnvironment env = stent.env();
        RunRef<String> run = env.getFutures().start(INVOICE, new Invoice("cy", 700)).join();
        env.result(run);
        RunHistory history = env.getFutures().history(run.getId()).join();
        assertTrue(WorkflowReplayer.check(INVOICE, RunHistory.fromJson(history.toJson())).isOk());
        WorkflowDefinition<Invoice, String> renamed = Workflows.define("java-invoice", Invoice.class, String.class, (ctx, invoice) -> {
            ctx.sleep(Duration.ofDays(30));
            return ctx.step("charge-card", String.class, RetryPolicy.DEFAULT, () -> "charged") + " for " + invoice.customer();
        });
        var report = WorkflowReplayer.check(renamed, history);
        assertFalse(report.isOk());
        assertEquals("charge", report.getProblems().get(0).getStepId());
    }
}
