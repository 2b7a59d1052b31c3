package dev.stent.samples;

import dev.stent.java.RunRef;
import dev.stent.test.StentExtension;
import dev.stent.test.StentTestEnvironment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The Java order workflow, tested with the test kit's JUnit 5 extension. */
class JavaOrderWorkflowTest {
    @RegisterExtension
    final StentExtension stent = StentExtension.create(env -> env
        .register(JavaOrderSample.ORDER)
        .stubStep(JavaOrderSample.ORDER, "authorize", () -> new JavaOrderSample.Authorization("test-auth", 1999)));

    @Test
    void approvedOrderShips() {
        StentTestEnvironment env = stent.env();
        RunRef<JavaOrderSample.Receipt> run = env.getFutures().start(JavaOrderSample.ORDER, new JavaOrderSample.OrderRequest("o-1", 1999)).join();
        env.advanceTime(Duration.ofHours(3));
        env.getFutures().signal(run.getId(), "approval", new JavaOrderSample.Approval("ana")).join();
        assertEquals(new JavaOrderSample.Receipt("o-1", "test-auth", "ana"), env.result(run));
    }
}
