package dev.stent.samples.guide;

import dev.stent.RunHistory;
import dev.stent.WorkflowDefinition;
import dev.stent.WorkflowReplayer;
import dev.stent.WorkflowScope;
import dev.stent.java.FutureClient;
import dev.stent.java.Workflows;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** The Java code of docs/changing-workflows.md; it compiles with the build, nothing runs it. */
public final class JavaChangingSnippets {
    private JavaChangingSnippets() {}

    public record Invoice(String customer, long cents) {}
    public record Month(String customer, int number) {}

    static final WorkflowDefinition<Invoice, String> INVOICE = Workflows.define("invoice", Invoice.class, String.class, (ctx, invoice) -> {
        if (ctx.version("tax", WorkflowScope.DEFAULT_VERSION, 1) == 1) {
            long tax = ctx.step("tax", Long.class, () -> invoice.cents() / 5);
            return ctx.step("charge-with-tax", String.class, () -> "charged " + (invoice.cents() + tax));
        }
        return ctx.step("charge", String.class, () -> "charged " + invoice.cents());
    });

    static final WorkflowDefinition<Month, String> MONTHLY = Workflows.define("monthly", Month.class, String.class, (ctx, month) -> {
        ctx.step("bill-" + month.number(), String.class, () -> "billed " + month.customer());
        ctx.sleep(Duration.ofDays(30));
        return ctx.continueAsNew(new Month(month.customer(), month.number() + 1));
    });

    static void keepAndCheck(FutureClient client, String runId) {
        RunHistory history = client.history(runId).join();
        history.write(Path.of("src/test/resources/histories/" + runId + ".json"));
        WorkflowReplayer.check(INVOICE, history).assertOk();
        WorkflowReplayer.assertAll(List.of(INVOICE), Path.of("src/test/resources/histories"));
    }
}
