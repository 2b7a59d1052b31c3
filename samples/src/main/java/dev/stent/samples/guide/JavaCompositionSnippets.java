package dev.stent.samples.guide;

import dev.stent.ChildFailedException;
import dev.stent.WorkflowDefinition;
import dev.stent.java.ChildRef;
import dev.stent.java.Workflows;

import java.util.List;

/**
 * The Java code of docs/composition.md. It compiles with the build, and DocsFromSamplesSpec checks that
 * the page shows it as written here; nothing runs it.
 */
public final class JavaCompositionSnippets {
    public record Parcel(String id, int grams) {}
    public record Label(String parcelId, String carrier) {}
    public record Shipment(String orderId, List<Parcel> parcels) {}
    public record Labels(List<Label> labels) {}

    static final WorkflowDefinition<Parcel, Label> PRINT_LABEL = Workflows.define("java-print-label", Parcel.class, Label.class,
        (ctx, parcel) -> ctx.step("label", Label.class, () -> new Label(parcel.id(), parcel.grams() > 2_000 ? "freight" : "post")));

    static final WorkflowDefinition<Shipment, Labels> SHIP = Workflows.define("java-ship", Shipment.class, Labels.class, (ctx, shipment) -> {
        Label first = ctx.child(PRINT_LABEL, shipment.parcels().get(0));
        ChildRef<Label> last = ctx.startChild(PRINT_LABEL, shipment.parcels().get(shipment.parcels().size() - 1), "last-label", false);
        List<Label> rest = ctx.map(PRINT_LABEL, shipment.parcels().subList(1, shipment.parcels().size() - 1));
        return new Labels(java.util.stream.Stream.of(List.of(first), rest, List.of(last.await())).flatMap(List::stream).toList());
    });

    static final WorkflowDefinition<Shipment, String> SHIP_OR_REFUND = Workflows.define("java-ship-or-refund", Shipment.class, String.class,
        (ctx, shipment) -> {
            try {
                return "shipped " + ctx.child(SHIP, shipment).labels().size();
            } catch (ChildFailedException e) {
                return ctx.step("refund", String.class, () -> "refunded " + shipment.orderId() + ": " + e.getFailure().getMessage());
            }
        });
}
