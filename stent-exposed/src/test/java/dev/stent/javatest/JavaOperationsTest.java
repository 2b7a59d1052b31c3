package dev.stent.javatest;

import dev.stent.FailureKind;
import dev.stent.QueueInfo;
import dev.stent.QueueLimits;
import dev.stent.RunInfo;
import dev.stent.RunNotFinishedException;
import dev.stent.RunStatus;
import dev.stent.ScheduleInfo;
import dev.stent.StentWorker;
import dev.stent.StepCache;
import dev.stent.WorkflowDefinition;
import dev.stent.java.RetryPolicies;
import dev.stent.java.RunRef;
import dev.stent.java.StartOptions;
import dev.stent.java.Workers;
import dev.stent.java.WorkflowOptions;
import dev.stent.java.Workflows;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Queue limits, partition keys, dead letters, the step cache and schedules, from Java. */
class JavaOperationsTest extends SqliteJavaTest {
    @Test
    void aQueueLimitDeclaredWithTheJavaBuilderHoldsAndIsListed() throws Exception {
        AtomicInteger running = new AtomicInteger();
        AtomicInteger most = new AtomicInteger();
        WorkflowDefinition<String, String> call = Workflows.define("call-provider", String.class, String.class,
            WorkflowOptions.builder().queue("provider").build(),
            (ctx, customer) -> ctx.step("call", String.class, () -> {
                most.accumulateAndGet(running.incrementAndGet(), Math::max);
                Thread.sleep(50);
                running.decrementAndGet();
                return customer;
            }));
        QueueLimits limits = QueueLimits.builder("provider").concurrency(2).concurrencyPerKey(1).rateLimit(100, Duration.ofSeconds(1)).build();
        try (StentWorker ignored = Workers.builder(stent).register(call).limit(limits).concurrency(8).pollInterval(Duration.ofMillis(20)).start()) {
            List<RunRef<String>> runs = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                runs.add(get(client.start(call, "c" + (i % 4), StartOptions.builder().partitionKey("c" + (i % 4)).build())));
            }
            for (RunRef<String> run : runs) get(run.result());
        }
        assertEquals(2, most.get(), "two at once, never more");
        QueueInfo queue = get(client.listQueues()).stream().filter(q -> q.getQueue().equals("provider")).findFirst().orElseThrow();
        assertEquals(2, queue.getLimits().getConcurrency());
        assertEquals(1, queue.getLimits().getConcurrencyPerKey());
        assertEquals(Duration.ofSeconds(1), queue.getLimits().getRatePeriod());
        assertEquals("c0", get(client.list(null, "call-provider", 1, 7)).get(0).getPartitionKey());
    }

    @Test
    void aDeadLetterIsListedRetriedDiscardedAndDeleted() throws Exception {
        AtomicBoolean down = new AtomicBoolean(true);
        AtomicInteger firstStep = new AtomicInteger();
        WorkflowDefinition<String, String> pay = Workflows.define("pay", String.class, String.class, (ctx, order) -> {
            ctx.step("reserve", String.class, () -> "r-" + firstStep.incrementAndGet());
            return ctx.step("charge", String.class, RetryPolicies.builder().maxAttempts(1).build(), () -> {
                if (down.get()) throw new IllegalStateException("provider down");
                return "charged " + order;
            });
        });
        try (StentWorker ignored = Workers.builder(stent).register(pay).pollInterval(Duration.ofMillis(20)).start()) {
            RunRef<String> run = get(client.start(pay, "o-1", StartOptions.withId("pay-1")));
            assertThrows(ExecutionException.class, () -> run.result().get(30, TimeUnit.SECONDS));
            List<RunInfo> dead = get(client.deadLetters(FailureKind.STEP));
            assertEquals(List.of("pay-1"), dead.stream().map(RunInfo::getId).toList());
            down.set(false);
            assertEquals(RunStatus.PENDING, get(client.retry("pay-1")));
            assertEquals("charged o-1", get(run.result()));
            assertEquals(1, firstStep.get(), "the completed step was not run again");
            assertEquals(1, get(client.describe("pay-1")).getRetries());

            down.set(true);
            RunRef<String> second = get(client.start(pay, "o-2", StartOptions.withId("pay-2")));
            assertThrows(ExecutionException.class, () -> second.result().get(30, TimeUnit.SECONDS));
            assertEquals(RunStatus.FAILED, get(client.discard("pay-2")));
            assertNotNull(get(client.describe("pay-2")).getDiscardedAt());
            assertTrue(get(client.deadLetters()).isEmpty());
            get(client.delete("pay-2"));
            assertEquals(List.of("pay-1"), get(client.list(null, "pay")).stream().map(RunInfo::getId).toList());
            // what the CLI and dashboard read: counts by workflow and status, and runs by creation time
            assertEquals(Map.of(RunStatus.COMPLETED, 1L), get(client.stats()).getByWorkflow().get("pay"));
            java.time.Instant later = java.time.Instant.now().plusSeconds(60);
            assertTrue(get(client.list(null, "pay", 10, 0, null, null, null, later, null)).isEmpty());
            assertEquals(1, get(client.list(null, "pay", 10, 0, null, null, null, null, later)).size());
        }
        WorkflowDefinition<String, String> waits = Workflows.define("waits", String.class, String.class,
            (ctx, in) -> ctx.awaitSignal("go", String.class));
        get(client.start(waits, "", StartOptions.withId("w-1")));
        ExecutionException notFinished = assertThrows(ExecutionException.class, () -> client.delete("w-1").get(30, TimeUnit.SECONDS));
        assertInstanceOf(RunNotFinishedException.class, notFinished.getCause());
    }

    @Test
    void aCachedJavaStepRunsOnceAcrossRuns() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        WorkflowDefinition<String, String> quote = Workflows.define("quote", String.class, String.class,
            (ctx, pair) -> ctx.step("rate", String.class, StepCache.of("fx:" + pair, Duration.ofMinutes(5)), () -> "rate-" + calls.incrementAndGet()));
        try (StentWorker ignored = Workers.builder(stent).register(quote).start()) {
            assertEquals("rate-1", get(get(client.start(quote, "EURUSD")).result()));
            assertEquals("rate-1", get(get(client.start(quote, "EURUSD")).result()));
            assertEquals("rate-2", get(get(client.start(quote, "GBPUSD")).result()));
        }
        assertEquals(2, calls.get());
    }

    @Test
    void aScheduleIsCreatedListedPausedAndDeletedFromJava() throws Exception {
        WorkflowDefinition<String, String> report = Workflows.define("report", String.class, String.class, (ctx, in) -> in);
        ScheduleInfo nightly = get(client.schedule("nightly-report", "0 3 * * *", report, "yesterday", ZoneId.of("Europe/Paris"), 1));
        assertEquals(3, nightly.getNextFireAt().atZone(ZoneId.of("Europe/Paris")).getHour());
        get(client.pauseSchedule("nightly-report"));
        assertTrue(get(client.listSchedules()).get(0).getPaused());
        get(client.resumeSchedule("nightly-report"));
        assertEquals(false, get(client.listSchedules()).get(0).getPaused());
        assertEquals(true, get(client.deleteSchedule("nightly-report")));
        assertTrue(get(client.listSchedules()).isEmpty());
    }
}
