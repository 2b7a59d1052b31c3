package dev.stent.samples.guide;

import com.fasterxml.jackson.core.type.TypeReference;
import dev.stent.Failure;
import dev.stent.RetryPolicy;
import dev.stent.RunInfo;
import dev.stent.RunStatus;
import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.WorkflowCancelledException;
import dev.stent.WorkflowDefinition;
import dev.stent.WorkflowFailedException;
import dev.stent.Codec;
import dev.stent.java.FutureClient;
import dev.stent.java.JavaCodecs;
import dev.stent.java.RetryPolicies;
import dev.stent.java.RunRef;
import dev.stent.java.StartOptions;
import dev.stent.java.Workers;
import dev.stent.java.Workflows;
import dev.stent.samples.JavaOrderSample.OrderRequest;
import dev.stent.samples.JavaOrderSample.Receipt;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The code of docs/java.md. It compiles with the build, and DocsFromSamplesSpec checks that the page
 * shows it as written here; nothing runs it.
 */
public final class JavaGuideSnippets {
    public record Line(String sku, int quantity) {}
    public record GreetingIn(String name, int times) {}
    public record GreetingOut(String text, int times) {}

    static final Codec<List<Line>> LINES = JavaCodecs.jackson(new TypeReference<List<Line>>() {});

    static WorkflowDefinition<List<Line>, List<Line>> reorder() {
        var wf = Workflows.define("reorder", LINES, LINES, (ctx, lines) ->
            ctx.step("dedupe", LINES, () -> lines.stream().distinct().toList()));
        return wf;
    }

    static RetryPolicy retryPolicy() {
        RetryPolicy policy = RetryPolicies.builder()
            .maxAttempts(5)                          // attempts in all, the first included (default 3)
            .initialDelay(Duration.ofSeconds(1))     // wait before the first retry (default 1 s)
            .backoffFactor(2.0)                      // growth of the wait (default 2.0)
            .maxDelay(Duration.ofMinutes(1))         // cap on one wait (default 60 s)
            .jitter(0.1)                             // random spread, as a fraction of the wait (default 0.1)
            .nonRetryable(IllegalArgumentException.class, IllegalStateException.class)
            .build();
        return policy;
    }

    static void work(Stent stent, WorkflowDefinition<OrderRequest, Receipt> ORDER) {
        try (StentWorker worker = Workers.builder(stent).register(ORDER).concurrency(16).start()) {
            // the worker claims and executes runs until it is closed
        }
    }

    static void startAndAwait(FutureClient client, WorkflowDefinition<OrderRequest, Receipt> ORDER)
        throws InterruptedException, TimeoutException {
        StartOptions options = StartOptions.builder()
            .id("o-42")                      // default: a random UUID
            .queue("orders")                 // default: the workflow's queue ("default" when starting by name)
            .priority(7)                     // default: the workflow's priority (0 when starting by name)
            .delay(Duration.ofMinutes(5))    // postpones the first claim
            .deadline(Instant.now().plus(Duration.ofHours(1))) // cancelled durably if not finished by then
            .build();
        RunRef<Receipt> run = client.start(ORDER, new OrderRequest("o-42", 1999), options).join();
        try {
            Receipt receipt = run.result().get(30, TimeUnit.SECONDS);
            System.out.println(receipt);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof WorkflowFailedException failed) {
                Failure f = failed.getFailure();          // type, message, stack trace, cause chain
                System.err.println(f.getType() + ": " + f.getMessage());
            } else if (e.getCause() instanceof WorkflowCancelledException) {
                // cancelled by a client
            }
        }
        List<RunInfo> failed = client.list(RunStatus.FAILED, "java-order", 50, 0).join();
        System.out.println(failed.size() + " failed orders");
    }

    static GreetingOut greet(FutureClient client) {
        RunRef<GreetingOut> run = client.start("kotlin-greet", new GreetingIn("Ana", 3), GreetingOut.class).join();
        return run.result().join();
    }
}
