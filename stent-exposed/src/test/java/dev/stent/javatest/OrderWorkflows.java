package dev.stent.javatest;

import dev.stent.NonRetryableException;
import dev.stent.RetryPolicy;
import dev.stent.WorkflowDefinition;
import dev.stent.java.RetryPolicies;
import dev.stent.java.WorkflowOptions;
import dev.stent.java.Workflows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** Java-defined workflows and the records they exchange, shared by the Java tests and the Java worker process. */
public final class OrderWorkflows {
    private OrderWorkflows() {}

    public record OrderRequest(String id, long amount) {}
    public record Auth(String code, long amount) {}
    public record Approval(String by) {}
    public record Receipt(String orderId, String authCode, String approvedBy, Instant at, String token, int attempts) {}

    public static final AtomicInteger AUTHORIZE_CALLS = new AtomicInteger();

    /** Steps, a retry policy, a durable sleep, a signal with a timeout and recorded values, all from Java. */
    public static final WorkflowDefinition<OrderRequest, Receipt> ORDER = Workflows.define(
        "java-order", OrderRequest.class, Receipt.class,
        WorkflowOptions.builder().retryPolicy(RetryPolicies.builder().maxAttempts(3).initialDelay(Duration.ofMillis(10)).build()).build(),
        (ctx, req) -> {
            Auth auth = ctx.step("authorize", Auth.class, () -> {
                if (AUTHORIZE_CALLS.incrementAndGet() == 1) throw new IOException("gateway timeout"); // retried
                return new Auth("auth-" + req.id(), req.amount());
            });
            ctx.sleep(Duration.ofMillis(600));
            Approval ok = ctx.awaitSignal("approval", Approval.class, Duration.ofDays(1));
            Instant at = ctx.now();
            String token = ctx.randomUuid().toString();
            int attempts = ctx.step("count", Integer.class, () -> AUTHORIZE_CALLS.get());
            return ctx.step("ship", Receipt.class, () -> new Receipt(req.id(), auth.code(), ok.by(), at, token, attempts));
        });

    /** Fails for good: a non-retryable checked-exception path. */
    public static final WorkflowDefinition<String, String> DECLINE = Workflows.define(
        "java-decline", String.class, String.class,
        (ctx, card) -> ctx.step("charge", String.class, RetryPolicy.DEFAULT, () -> {
            throw new NonRetryableException("card " + card + " declined", new IOException("issuer said no"));
        }));

    /**
     * One step that blocks its thread until every run's step is blocking at once (a latch the test sets):
     * it can finish only if blocking steps do not share a few engine threads.
     */
    public static volatile CountDownLatch ALL_BLOCKED = new CountDownLatch(0);
    public static final WorkflowDefinition<Integer, Integer> BLOCKING = Workflows.define(
        "java-blocking", Integer.class, Integer.class,
        WorkflowOptions.builder().retryPolicy(RetryPolicy.NONE).build(),
        (ctx, n) -> ctx.step("block", Integer.class, () -> {
            CountDownLatch all = ALL_BLOCKED;
            all.countDown();
            if (!all.await(30, TimeUnit.SECONDS)) throw new IllegalStateException("the blocking steps never all ran at once");
            return n * 2;
        }));

    /** Records the order runs execute in; for the priority test. */
    public static final List<String> EXECUTED = new java.util.concurrent.CopyOnWriteArrayList<>();
    public static final WorkflowDefinition<String, String> ORDERED = Workflows.define(
        "java-ordered", String.class, String.class,
        (ctx, in) -> ctx.step("run", String.class, () -> { EXECUTED.add(in); return in; }));

    /** Waits for a signal; used by the cancel and future tests. */
    public static final WorkflowDefinition<String, String> WAITER = Workflows.define(
        "java-waiter", String.class, String.class,
        (ctx, in) -> in + ":" + ctx.awaitSignal("go", String.class));

    /** Five logged steps for the crash test; while the file "block" exists, s3 hangs. */
    public static WorkflowDefinition<String, String> crash(Path dir) {
        return Workflows.define("java-crash", String.class, String.class, (ctx, in) -> {
            for (int i = 1; i <= 5; i++) {
                int n = i;
                ctx.run("s" + n, () -> {
                    Files.writeString(dir.resolve("exec.log"), ctx.getRunId() + ":s" + n + ":" + ProcessHandle.current().pid() + "\n",
                        StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                    if (n == 3) while (Files.exists(dir.resolve("block"))) Thread.sleep(50);
                });
            }
            return "java-ok";
        });
    }

    /** Lines of the crash log, or none. */
    public static List<String> log(Path dir) throws IOException {
        Path f = dir.resolve("exec.log");
        return Files.exists(f) ? Files.readAllLines(f).stream().filter(l -> !l.isBlank()).toList() : List.of();
    }
}
