package dev.stent.bench.dbos;

import dev.dbos.transact.DBOS;
import dev.stent.bench.CpuMeter;
import dev.dbos.transact.StartWorkflowOptions;
import dev.dbos.transact.config.DBOSConfig;
import dev.dbos.transact.workflow.Queue;
import dev.dbos.transact.workflow.WorkflowHandle;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Drives DBOS Transact (Java) through the same scenarios as the Stent bench, on PostgreSQL.
 *
 * <p>Usage: {@code DbosBench <jdbcUrl> <user> <password> <scenario> <n>}. Prints exactly one JSON
 * line on stdout; everything else (DBOS logs, progress) goes to stderr.
 *
 * <p>Optional system properties:
 *
 * <ul>
 *   <li>{@code dbos.bench.mode}: {@code direct} (default) starts workflows with {@code
 *       DBOS.startWorkflow} and no queue, so DBOS runs them at once on its own executor; {@code
 *       queue} enqueues them on a DBOS queue instead (throughput_1step and fanout only).
 *   <li>{@code dbos.bench.queuePollMs}: polling interval of that queue (DBOS default 1000 ms).
 *   <li>{@code dbos.bench.starters}: threads starting workflows in throughput_1step (default 16,
 *       as the Stent harness starts from 16 coroutines).
 * </ul>
 */
public final class DbosBench {
    private static final String QUEUE_NAME = "bench-queue";

    private DbosBench() {}

    public static void main(String[] args) {
        // Keep stdout for the one result line only.
        PrintStream out = System.out;
        System.setOut(System.err);
        int rc = 0;
        try {
            String line = run(args);
            out.println(line);
            out.flush();
        } catch (Throwable t) {
            t.printStackTrace(System.err);
            rc = 1;
        }
        System.err.flush();
        System.exit(rc);
    }

    private static String run(String[] args) throws Exception {
        if (args.length != 5) {
            throw new IllegalArgumentException(
                    "usage: DbosBench <jdbcUrl> <user> <password> <scenario> <n>");
        }
        String url = args[0];
        String user = args[1];
        String password = args[2];
        String scenario = args[3];
        int n = Integer.parseInt(args[4]);
        String mode = System.getProperty("dbos.bench.mode", "direct");
        long queuePollMs = Long.getLong("dbos.bench.queuePollMs", 1000L);
        int starters = Integer.getInteger("dbos.bench.starters", 16);

        DBOSConfig config = DBOSConfig.defaults("stent-bench")
                .withDatabaseUrl(url)
                .withDbUser(user)
                .withDbPassword(password)
                .withMigrate(true); // creates DBOS's system tables (schema "dbos"); admin server is off by default
        Queue queue = new Queue(QUEUE_NAME).withPollingInterval(Duration.ofMillis(queuePollMs));

        try (DBOS dbos = new DBOS(config)) {
            BenchWorkflows wf = dbos.registerProxy(BenchWorkflows.class, new BenchWorkflowsImpl(dbos));
            BenchWorkflowsImpl.self = wf;
            BenchWorkflowsImpl.queue = queue;
            if (scenario.equals("map_fanout") && !mode.equals("queue")) {
                mode = "queue"; // DBOS fans out over a queue: that is its map
            }
            if (mode.equals("queue")) {
                dbos.registerQueue(queue);
            } else if (!mode.equals("direct")) {
                throw new IllegalArgumentException("dbos.bench.mode must be direct or queue: " + mode);
            }
            dbos.launch();
            StartWorkflowOptions opts =
                    mode.equals("queue") ? new StartWorkflowOptions(queue) : new StartWorkflowOptions();
            log("DBOS " + DBOS.version() + " launched; scenario=" + scenario + " n=" + n + " mode=" + mode
                    + (mode.equals("queue") ? " queuePollMs=" + queuePollMs : ""));
            switch (scenario) {
                case "step_overhead":
                    return stepOverhead(dbos, wf, n);
                case "throughput_1step":
                    return throughput(dbos, wf, opts, n, starters, mode);
                case "fanout":
                    return fanout(dbos, wf, opts, mode);
                case "start_latency":
                    return startLatency(dbos, wf, n);
                case "map_fanout":
                    return mapFanout(dbos, wf, n);
                default:
                    throw new IllegalArgumentException("unknown scenario " + scenario);
            }
        }
    }

    /** One workflow of n sequential no-op steps, timed around start + getResult. */
    private static String stepOverhead(DBOS dbos, BenchWorkflows wf, int n) throws Exception {
        dbos.startWorkflow(() -> wf.noopSteps(50)).getResult(); // warm-up, not measured
        long t0 = System.nanoTime();
        dbos.startWorkflow(() -> wf.noopSteps(n)).getResult();
        double wall = (System.nanoTime() - t0) / 1e9;
        return new Json()
                .head("step_overhead", n)
                .num("wall_s", wall)
                .num("per_sec", n / wall)
                .num("us_per_step", wall * 1e6 / n)
                .done();
    }

    /**
     * n one-step workflows started from several threads at once, then all awaited; after a warm-up
     * batch of n workflows through the same path, as the Stent harness does.
     */
    private static String throughput(
            DBOS dbos, BenchWorkflows wf, StartWorkflowOptions opts, int n, int starters, String mode)
            throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(starters);
        try {
            int warm = n;
            startAndAwait(dbos, wf, opts, -warm - 1, warm, starters, pool); // warm-up (JIT), not measured
            CpuMeter cpu = new CpuMeter(List.of());
            long t0 = System.nanoTime();
            double started = startAndAwait(dbos, wf, opts, 0, n, starters, pool);
            double wall = (System.nanoTime() - t0) / 1e9;
            var cpuS = cpu.elapsed();
            log(String.format(Locale.ROOT, "throughput: %d started in %.3f s, all done in %.3f s", n, started, wall));
            Json j = new Json().head("throughput_1step", n).num("workers", 1).num("wall_s", wall)
                    .num("per_sec", n / wall).num("start_phase_s", started).num("warm_up", warm);
            // the DBOS JVM counts as "bench": it starts, runs and awaits the workflows
            cpuS.forEach((group, secs) -> j.num("cpu_us_per_run_" + group, secs * 1e6 / n));
            if (!mode.equals("direct")) {
                j.str("dbos_mode", mode);
            }
            return j.done();
        } finally {
            pool.shutdownNow();
        }
    }

    /** Starts workflows with arguments first..first+n-1 from [starters] threads, then awaits them; returns the start phase in s. */
    private static double startAndAwait(
            DBOS dbos, BenchWorkflows wf, StartWorkflowOptions opts, int first, int n, int starters, ExecutorService pool)
            throws Exception {
        long t0 = System.nanoTime();
        List<Future<List<WorkflowHandle<Integer, RuntimeException>>>> parts = new ArrayList<>();
        int chunk = n / starters + 1;
        for (int from = 0; from < n; from += chunk) {
            final int lo = first + from;
            final int hi = first + Math.min(n, from + chunk);
            parts.add(pool.submit(() -> {
                List<WorkflowHandle<Integer, RuntimeException>> hs = new ArrayList<>(hi - lo);
                for (int i = lo; i < hi; i++) {
                    final int arg = i;
                    hs.add(dbos.startWorkflow(() -> wf.oneStep(arg), opts));
                }
                return hs;
            }));
        }
        List<WorkflowHandle<Integer, RuntimeException>> handles = new ArrayList<>(n);
        for (var p : parts) {
            handles.addAll(p.get());
        }
        double started = (System.nanoTime() - t0) / 1e9;
        for (var h : handles) {
            h.getResult();
        }
        return started;
    }

    /** One workflow enqueues n oneStep children on the queue and awaits them; after a warm-up of the same size. */
    private static String mapFanout(DBOS dbos, BenchWorkflows wf, int n) throws Exception {
        dbos.startWorkflow(() -> wf.mapFanout(n)).getResult(); // warm-up, not measured
        long t0 = System.nanoTime();
        long sum = dbos.startWorkflow(() -> wf.mapFanout(n)).getResult();
        double wall = (System.nanoTime() - t0) / 1e9;
        if (sum != java.util.stream.IntStream.range(0, n).map(i -> i & 0xff).asLongStream().sum()) { // oneStep returns i & 0xff
            throw new IllegalStateException("map_fanout: sum " + sum);
        }
        return new Json().head("map_fanout", n).num("wall_s", wall).num("per_sec", n / wall).str("dbos_mode", "queue").done();
    }

    /** 20 workflows x 50 sequential no-op steps, started at once, all awaited. */
    private static String fanout(DBOS dbos, BenchWorkflows wf, StartWorkflowOptions opts, String mode)
            throws Exception {
        final int workflows = 20;
        final int steps = 50;
        long t0 = System.nanoTime();
        List<WorkflowHandle<Integer, RuntimeException>> handles = new ArrayList<>(workflows);
        for (int i = 0; i < workflows; i++) {
            handles.add(dbos.startWorkflow(() -> wf.noopSteps(steps), opts));
        }
        for (var h : handles) {
            h.getResult();
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        int total = workflows * steps;
        Json j = new Json().head("fanout", total).num("wall_s", wall).num("per_sec", total / wall)
                .num("workflows", workflows).num("steps_each", steps);
        if (!mode.equals("direct")) {
            j.str("dbos_mode", mode);
        }
        return j.done();
    }

    /** n sequential starts on an idle DBOS: time from before startWorkflow to the first step running. */
    private static String startLatency(DBOS dbos, BenchWorkflows wf, int n) throws Exception {
        for (int i = 0; i < 20; i++) {
            latencyOnce(dbos, wf, -1 - i); // warm-up
        }
        List<Double> ms = new ArrayList<>(n);
        long t0 = System.nanoTime();
        for (int i = 0; i < n; i++) {
            ms.add(latencyOnce(dbos, wf, i));
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        Collections.sort(ms);
        return new Json()
                .head("start_latency", n)
                .num("p50_ms", percentile(ms, 0.50))
                .num("p99_ms", percentile(ms, 0.99))
                .num("wall_s", wall)
                .num("per_sec", n / wall)
                .done();
    }

    private static double latencyOnce(DBOS dbos, BenchWorkflows wf, int key) throws Exception {
        Thread.sleep(5); // DBOS is idle between starts (same pause as the Stent harness)
        long t0 = System.nanoTime();
        dbos.startWorkflow(() -> wf.latencyProbe(key)).getResult();
        Long at = BenchWorkflowsImpl.FIRST_STEP_AT.get(key);
        if (at == null) {
            throw new IllegalStateException("latency probe " + key + " recorded no first step");
        }
        return (at - t0) / 1e6;
    }

    /** Same definition as the Stent harness: the element at floor((size - 1) * q). */
    private static double percentile(List<Double> sorted, double q) {
        return sorted.isEmpty() ? -1.0 : sorted.get((int) ((sorted.size() - 1) * q));
    }

    private static void log(String msg) {
        System.err.println("[dbos-bench] " + msg);
    }

    /** A flat JSON object written by hand. */
    private static final class Json {
        private final StringBuilder sb = new StringBuilder("{");

        Json head(String name, int n) {
            return str("name", name).str("engine", "dbos").str("store", "postgres").num("n", n);
        }

        Json str(String k, String v) {
            key(k);
            sb.append('"').append(v.replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
            return this;
        }

        Json num(String k, long v) {
            key(k);
            sb.append(v);
            return this;
        }

        Json num(String k, double v) {
            key(k);
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                sb.append("null");
            } else {
                sb.append(String.format(Locale.ROOT, "%.6f", v));
            }
            return this;
        }

        private void key(String k) {
            if (sb.length() > 1) {
                sb.append(',');
            }
            sb.append('"').append(k).append("\":");
        }

        String done() {
            return sb.append('}').toString();
        }
    }
}
