package dev.stent.javatest;

import com.fasterxml.jackson.core.type.TypeReference;
import dev.stent.Codec;
import dev.stent.RunInfo;
import dev.stent.RunStatus;
import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.exposed.Stents;
import dev.stent.StepFailedException;
import dev.stent.RetryPolicy;
import dev.stent.StepTimeoutException;
import dev.stent.UnknownRunException;
import dev.stent.WorkflowCancelledException;
import dev.stent.WorkflowFailedException;
import dev.stent.java.FutureClient;
import dev.stent.java.JavaCodecs;
import dev.stent.java.RunRef;
import dev.stent.java.StartOptions;
import dev.stent.java.Workers;
import dev.stent.java.WorkflowOptions;
import dev.stent.java.Workflows;
import dev.stent.javatest.OrderWorkflows.Approval;
import dev.stent.javatest.OrderWorkflows.OrderRequest;
import dev.stent.javatest.OrderWorkflows.Receipt;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Java facade, used the way a Java team would: records, lambdas, builders and futures. */
class JavaApiTest extends SqliteJavaTest {
    private StentWorker worker(dev.stent.WorkflowDefinition<?, ?>... workflows) {
        Workers.Builder b = Workers.builder(stent).unloadThreshold(Duration.ofMillis(200)).pollInterval(Duration.ofMillis(50));
        for (var wf : workflows) b.register(wf);
        return b.start();
    }

    @Test
    void aJavaWorkflowRunsStepsRetriesSleepsAndSignalsWithRecords() throws Exception {
        OrderWorkflows.AUTHORIZE_CALLS.set(0);
        try (StentWorker ignored = worker(OrderWorkflows.ORDER)) {
            RunRef<Receipt> run = get(client.start(OrderWorkflows.ORDER, new OrderRequest("o-42", 1999), StartOptions.withId("o-42")));
            assertEquals("o-42", run.getId());
            // Java reads a retry policy's delays as java.time.Duration
            assertEquals(Duration.ofMillis(10), OrderWorkflows.ORDER.getRetryPolicy().getInitialDelay());
            assertEquals(Duration.ofSeconds(60), OrderWorkflows.ORDER.getRetryPolicy().getMaxDelay());
            // the durable sleep unloads the run: no lease, no coroutine, until the signal wakes it
            waitFor(() -> {
                RunInfo waiting = get(client.describe("o-42"));
                return waiting.getStatus() == RunStatus.WAITING && waiting.getLeaseOwner() == null;
            });
            get(client.signal("o-42", "approval", new Approval("ana")));
            Receipt receipt = get(run.result());

            RunInfo info = get(run.describe());
            // the receipt carries the recorded time and token, not fresh ones
            Map<String, String> results = info.getRecords().stream()
                .filter(s -> s.getResult() != null).collect(Collectors.toMap(s -> s.getId(), s -> s.getResult()));
            Instant recordedAt = Instant.ofEpochMilli(Long.parseLong(results.get("now#1")));
            String recordedToken = results.get("uuid#1").replace("\"", "");
            assertEquals(new Receipt("o-42", "auth-o-42", "ana", recordedAt, recordedToken, 2), receipt);
            assertEquals(RunStatus.COMPLETED, info.getStatus());
            Map<String, String> steps = info.getRecords().stream().collect(Collectors.toMap(s -> s.getId(), s -> s.getStatus().name()));
            assertEquals(Map.of("authorize", "COMPLETED", "sleep#1", "WAITING", "signal:approval#1", "COMPLETED",
                "now#1", "COMPLETED", "uuid#1", "COMPLETED", "count", "COMPLETED", "ship", "COMPLETED"), steps);
            assertEquals(2, info.getRecords().stream().filter(s -> s.getId().equals("authorize")).findFirst().orElseThrow().getAttempts());
            assertEquals(2, OrderWorkflows.AUTHORIZE_CALLS.get(), "a replay after the unload did not run authorize again");
        }
    }

    @Test
    void aFailedJavaStepFailsTheFutureWithTheRecordedCause() throws Exception {
        try (StentWorker ignored = worker(OrderWorkflows.DECLINE)) {
            RunRef<String> run = get(client.start(OrderWorkflows.DECLINE, "4242"));
            ExecutionException e = assertThrows(ExecutionException.class, () -> run.result().get(30, TimeUnit.SECONDS));
            WorkflowFailedException failed = assertInstanceOf(WorkflowFailedException.class, e.getCause());
            assertEquals(StepFailedException.class.getName(), failed.getFailure().getType());
            assertEquals("card 4242 declined", failed.getFailure().getCause().getMessage());
            assertEquals("java.io.IOException", failed.getFailure().getCause().getCause().getType());
        }
    }

    @Test
    void blockingJavaStepsRunOnTheirOwnThreadsAndDoNotStarveTheEngine() throws Exception {
        // each step blocks until all of them block at once: more than this machine has engine threads, on any machine
        int n = Math.max(20, 4 * Runtime.getRuntime().availableProcessors());
        OrderWorkflows.ALL_BLOCKED = new java.util.concurrent.CountDownLatch(n);
        try (StentWorker ignored = Workers.builder(stent).register(OrderWorkflows.BLOCKING).concurrency(n).start()) {
            List<RunRef<Integer>> runs = IntStream.range(0, n)
                .mapToObj(i -> client.start(OrderWorkflows.BLOCKING, i).join()).toList();
            for (int i = 0; i < runs.size(); i++) assertEquals(i * 2, get(runs.get(i).result()));
        }
    }

    @Test
    void cancelDeadlinesAndStepTimeoutsReachBlockingJavaSteps() throws Exception {
        AtomicBoolean interrupted = new AtomicBoolean();
        CountDownLatch started = new CountDownLatch(1);
        var slow = Workflows.define("java-slow", String.class, String.class, (ctx, in) ->
            ctx.step("call", String.class, () -> {
                started.countDown();
                try {
                    Thread.sleep(60_000);
                } catch (InterruptedException e) {
                    interrupted.set(true);
                    throw e;
                }
                return "slept";
            }));
        var timed = Workflows.define("java-timed", String.class, String.class, (ctx, in) ->
            ctx.step("call", String.class, RetryPolicy.NONE, Duration.ofMillis(200), () -> {
                Thread.sleep(60_000);
                return "never";
            }));
        var limited = Workflows.define("java-limited", String.class, String.class,
            WorkflowOptions.builder().timeout(Duration.ofMillis(500)).build(),
            (ctx, in) -> {
                ctx.sleep(Duration.ofDays(1));
                return "woke";
            });
        try (StentWorker ignored = Workers.builder(stent).register(slow).register(timed).register(limited)
                 .stopTimeout(Duration.ofSeconds(2)).unloadThreshold(Duration.ofMillis(100)).pollInterval(Duration.ofMillis(50)).start()) {
            RunRef<String> run = get(client.start(slow, "x", StartOptions.withId("js")));
            assertTrue(started.await(20, TimeUnit.SECONDS));
            assertEquals(RunStatus.RUNNING, get(run.cancel()));
            ExecutionException cancelled = assertThrows(ExecutionException.class, () -> run.result().get(30, TimeUnit.SECONDS));
            assertInstanceOf(WorkflowCancelledException.class, cancelled.getCause());
            assertTrue(interrupted.get(), "the blocked Java step was interrupted");
            assertEquals(List.of(), get(run.describe()).getRecords());

            ExecutionException timedOut = assertThrows(ExecutionException.class,
                () -> get(client.start(timed, "x")).result().get(30, TimeUnit.SECONDS));
            WorkflowFailedException failed = assertInstanceOf(WorkflowFailedException.class, timedOut.getCause());
            assertEquals(StepTimeoutException.class.getName(), failed.getFailure().getCause().getType());

            for (RunRef<String> r : List.of(
                get(client.start(limited, "x")), // the workflow's timeout
                get(client.start(slow, "y", StartOptions.builder().deadline(Instant.now().plusMillis(300)).build())))) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> r.result().get(30, TimeUnit.SECONDS));
                WorkflowCancelledException c = assertInstanceOf(WorkflowCancelledException.class, e.getCause());
                assertTrue(c.getReason().contains("passed its deadline"), c.getMessage());
            }
        }
    }

    @Test
    void aHigherPriorityRunIsClaimedFirst() throws Exception {
        OrderWorkflows.EXECUTED.clear();
        get(client.start(OrderWorkflows.ORDERED, "low", StartOptions.builder().id("low").priority(1).build()));
        get(client.start(OrderWorkflows.ORDERED, "high", StartOptions.builder().id("high").priority(9).build()));
        get(client.start(OrderWorkflows.ORDERED, "middle", StartOptions.builder().id("middle").priority(5).build()));
        assertEquals(9, get(client.describe("high")).getPriority());
        try (StentWorker ignored = Workers.builder(stent).register(OrderWorkflows.ORDERED).concurrency(1).start()) {
            for (String id : List.of("low", "high", "middle")) get(client.result(id, String.class));
        }
        assertEquals(List.of("high", "middle", "low"), OrderWorkflows.EXECUTED);
    }

    @Test
    void cancellingTheReturnedFutureStopsTheWaitingNeverTheRun() throws Exception {
        try (StentWorker ignored = worker(OrderWorkflows.WAITER)) {
            RunRef<String> run = get(client.start(OrderWorkflows.WAITER, "w", StartOptions.withId("w1")));
            CompletableFuture<String> waiting = run.result();
            assertTrue(waiting.cancel(true));
            assertThrows(CancellationException.class, waiting::join);
            get(client.signal("w1", "go", "now"));
            assertEquals("w:now", get(run.result()));
        }
    }

    @Test
    void startOptionsQueuesDelayPriorityListAndCancel() throws Exception {
        RunRef<String> delayed = get(client.start(OrderWorkflows.WAITER, "d",
            StartOptions.builder().id("d1").queue("java-q").priority(7).delay(Duration.ofHours(1)).build()));
        RunInfo info = get(delayed.describe());
        assertEquals(RunStatus.PENDING, info.getStatus());
        assertEquals("java-q", info.getQueue());
        assertTrue(info.getReadyAt().isAfter(Instant.now().plus(Duration.ofMinutes(59))));

        // queue routing, with nothing else in the way: both runs are ready now, in different queues
        get(client.start(OrderWorkflows.WAITER, "other", StartOptions.builder().id("o1").queue("elsewhere").build()));
        get(client.start(OrderWorkflows.WAITER, "mine", StartOptions.builder().id("q1").queue("java-q").build()));
        try (StentWorker ignored = Workers.builder(stent).register(OrderWorkflows.WAITER).queues("elsewhere")
                 .unloadThreshold(Duration.ofMillis(100)).pollInterval(Duration.ofMillis(50)).start()) {
            waitFor(() -> get(client.describe("o1")).getStatus() == RunStatus.WAITING);
            RunInfo notMine = get(client.describe("q1"));
            assertEquals(RunStatus.PENDING, notMine.getStatus(), "the worker serves only its queue");
            assertEquals(0, notMine.getClaimCount());
        }
        try (StentWorker ignored = Workers.builder(stent).register(OrderWorkflows.WAITER).queues("java-q")
                 .unloadThreshold(Duration.ofMillis(100)).pollInterval(Duration.ofMillis(50)).start()) {
            waitFor(() -> get(client.describe("q1")).getStatus() == RunStatus.WAITING);
            assertEquals(RunStatus.PENDING, get(client.describe("d1")).getStatus(), "its delay has not passed");
        }
        List<RunInfo> waiting = get(client.list(RunStatus.WAITING, "java-waiter", 10, 0));
        assertEquals(Set.of("o1", "q1"), waiting.stream().map(RunInfo::getId).collect(Collectors.toSet()));
        assertEquals(3, get(client.list()).size());

        assertEquals(RunStatus.CANCELLED, get(client.cancel("d1")));
        ExecutionException e = assertThrows(ExecutionException.class, () -> delayed.result().get(10, TimeUnit.SECONDS));
        assertInstanceOf(dev.stent.WorkflowCancelledException.class, e.getCause());
        ExecutionException unknown = assertThrows(ExecutionException.class, () -> client.describe("nope").get(10, TimeUnit.SECONDS));
        assertInstanceOf(UnknownRunException.class, unknown.getCause());
    }

    @Test
    void aJavaClientStartsAKotlinWorkflowByNameWithJsonBothWays() throws Exception {
        try (StentWorker ignored = worker(dev.stent.it.KotlinInterop.INSTANCE.getGreet())) {
            RunRef<GreetingOut> run = get(client.start("kotlin-greet", new GreetingIn("Ana", 3), GreetingOut.class));
            assertEquals(new GreetingOut("hello Ana", 3), get(run.result()));
        }
    }

    /** Same JSON shape as the Kotlin @Serializable classes in KotlinInterop. */
    public record GreetingIn(String name, int times) {}
    public record GreetingOut(String text, int times) {}

    interface Check { boolean ok() throws Exception; }

    static void waitFor(Check check) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!check.ok()) {
            if (System.nanoTime() > deadline) throw new AssertionError("condition not reached in 20 s");
            Thread.sleep(20);
        }
    }

    @Test
    void aKilledJavaWorkerProcessLosesNoFinishedStep() throws Exception {
        Path db = dir.resolve("crash.db");
        try (Stent crashStent = Stents.sqlite(db.toString())) {
            FutureClient c = FutureClient.of(crashStent);
            java.nio.file.Files.writeString(dir.resolve("block"), "");
            Process first = startJavaWorker(db);
            try {
                get(c.start("java-crash", "x", String.class, StartOptions.withId("jc")));
                waitFor(() -> OrderWorkflows.log(dir).stream().anyMatch(l -> l.startsWith("jc:s3:")));
            } finally {
                first.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            }
            java.nio.file.Files.delete(dir.resolve("block"));
            Process second = startJavaWorker(db);
            try {
                assertEquals("java-ok", get(c.result("jc", String.class)));
            } finally {
                second.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            }
            Map<String, Long> counts = OrderWorkflows.log(dir).stream()
                .collect(Collectors.groupingBy(l -> l.split(":")[1], Collectors.counting()));
            assertEquals(Map.of("s1", 1L, "s2", 1L, "s3", 2L, "s4", 1L, "s5", 1L), counts);
        }
    }

    private Process startJavaWorker(Path db) throws Exception {
        String javaBin = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        Path out = dir.resolve("worker-" + System.nanoTime() + ".out");
        Process p = new ProcessBuilder(javaBin, "-Xmx256m", "-cp", cp, JavaWorkerMain.class.getName(), db.toString(), dir.toString())
            .redirectErrorStream(true).redirectOutput(out.toFile()).start();
        waitFor(() -> {
            String text = java.nio.file.Files.exists(out) ? java.nio.file.Files.readString(out) : "";
            if (!p.isAlive() && !text.contains("READY")) throw new AssertionError("worker died:\n" + text);
            return text.contains("READY");
        });
        assertFalse(!p.isAlive());
        return p;
    }

    record Line(String sku, int qty) {}

    static final Codec<List<Line>> LINES = JavaCodecs.jackson(new TypeReference<List<Line>>() {});
    static final Codec<Map<String, Integer>> COUNTS = JavaCodecs.jackson(new TypeReference<Map<String, Integer>>() {});
    static final Codec<List<String>> TAGS = JavaCodecs.jackson(new TypeReference<List<String>>() {});

    @Test
    void genericPayloadsGoThroughExplicitCodecsAndRecordedValuesTakeIds() throws Exception {
        var wf = Workflows.define("java-generic", LINES, COUNTS, (ctx, lines) -> {
            Map<String, Integer> counts = ctx.step("count", COUNTS, () -> {
                Map<String, Integer> m = new TreeMap<>();
                for (Line l : lines) m.merge(l.sku(), l.qty(), Integer::sum);
                return m;
            });
            Instant at = ctx.now("at");
            double roll = ctx.random("roll");
            UUID token = ctx.randomUuid("token");
            List<String> tags = ctx.awaitSignal("tags", TAGS, Duration.ofSeconds(30), "tags-wait");
            Map<String, Integer> out = new TreeMap<>(counts);
            out.put("tags", tags.size());
            out.put("recorded", roll >= 0 && roll < 1 && at != null && token != null ? 1 : 0);
            return out;
        });
        try (StentWorker ignored = worker(wf)) {
            RunRef<Map<String, Integer>> run =
                get(client.start(wf, List.of(new Line("a", 2), new Line("b", 1), new Line("a", 3)), StartOptions.withId("gen-1")));
            get(client.signal("gen-1", "tags", List.of("x", "y"), TAGS));
            Map<String, Integer> expected = Map.of("a", 5, "b", 1, "tags", 2, "recorded", 1);
            assertEquals(expected, get(run.result()));
            assertEquals(expected, get(client.result("gen-1", COUNTS)));
            Set<String> ids = get(run.describe()).getRecords().stream().map(s -> s.getId()).collect(Collectors.toSet());
            assertEquals(Set.of("count", "at", "roll", "token", "tags-wait"), ids);
        }
    }
    record OrderLine(String sku, int quantity) {}
    record Priced(String sku, long cents) {}

    static final dev.stent.WorkflowDefinition<OrderLine, Priced> PRICE = Workflows.define("java-price", OrderLine.class, Priced.class,
        (ctx, line) -> ctx.step("price", Priced.class, () -> new Priced(line.sku(), 250L * line.quantity())));

    static final dev.stent.WorkflowDefinition<Integer, Long> INVOICE = Workflows.define("java-invoice", Integer.class, Long.class, (ctx, n) -> {
        Priced first = ctx.child(PRICE, new OrderLine("first", 1));
        dev.stent.java.ChildRef<Priced> second = ctx.startChild(PRICE, new OrderLine("second", 2), "second", false);
        List<OrderLine> lines = IntStream.range(0, n).mapToObj(i -> new OrderLine("sku-" + i, i)).toList();
        List<Priced> priced = ctx.map(PRICE, lines);
        return first.cents() + second.await().cents() + priced.stream().mapToLong(Priced::cents).sum();
    });

    static final dev.stent.WorkflowDefinition<String, String> REFUSE = Workflows.define("java-refuse", String.class, String.class,
        (ctx, why) -> ctx.step("refuse", String.class, RetryPolicy.NONE, () -> { throw new IllegalStateException("refused: " + why); }));

    static final dev.stent.WorkflowDefinition<String, String> CATCHER = Workflows.define("java-catcher", String.class, String.class, (ctx, why) -> {
        try {
            return ctx.child(REFUSE, why);
        } catch (dev.stent.ChildFailedException e) {
            return e.getChildStatus() + " " + e.getFailure().getMessage();
        }
    });

    @Test
    void aJavaWorkflowStartsChildrenAwaitsThemAndMapsOverThePool() throws Exception {
        try (StentWorker ignored = worker(PRICE, INVOICE, REFUSE, CATCHER)) {
            // 250 + 500 + 250 * (0 + 1 + … + 9)
            long total = get(client.start(INVOICE, 10, StartOptions.withId("inv")).thenCompose(RunRef::result));
            assertEquals(250L + 500L + 250L * 45, total);
            RunInfo info = get(client.describe("inv"));
            assertTrue(info.getChildren().contains("inv/second"), info.getChildren().toString());
            assertEquals(12, info.getChildren().size());
            assertEquals("inv", get(client.describe("inv/second")).getParentId());
            assertEquals(10, get(client.list(null, "java-price", 100, 0, "inv")).stream().filter(r -> r.getId().startsWith("inv/map")).count());
            String caught = get(client.start(CATCHER, "no stock", StartOptions.withId("c")).thenCompose(RunRef::result));
            assertTrue(caught.startsWith("FAILED ") && caught.contains("refused: no stock"), caught);
        }
    }

    record Progress(int done, int of) {}

    static final dev.stent.WorkflowDefinition<Integer, String> REPORT = Workflows.define("java-report", Integer.class, String.class, (ctx, n) -> {
        for (int i = 1; i <= n; i++) {
            ctx.setEvent("progress", new Progress(i, n));
            ctx.awaitSignal("next", String.class);
        }
        return "reported";
    });

    @Test
    void aJavaClientAwaitsEachEventAJavaWorkflowPublishes() throws Exception {
        try (StentWorker ignored = worker(REPORT)) {
            RunRef<String> run = get(client.start(REPORT, 2, StartOptions.withId("rep")));
            var first = get(client.awaitEvent("rep", "progress", Progress.class, 0, Duration.ofSeconds(30)));
            assertEquals(new Progress(1, 2), first.getValue());
            get(client.signal("rep", "next", "go"));
            var second = get(client.awaitEvent("rep", "progress", Progress.class, first.getVersion(), Duration.ofSeconds(30)));
            assertEquals(new Progress(2, 2), second.getValue());
            get(client.signal("rep", "next", "go"));
            assertEquals("reported", get(run.result()));
            assertEquals(2L, get(client.getEvent("rep", "progress", Progress.class)).getVersion());
        }
    }
}
