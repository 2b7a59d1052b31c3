package dev.stent.bench.dbos;

import dev.dbos.transact.DBOS;
import dev.dbos.transact.workflow.Workflow;

import java.util.concurrent.ConcurrentHashMap;

/** Implementations: every step is a DBOS step (checkpointed by DBOS) that does no work. */
public final class BenchWorkflowsImpl implements BenchWorkflows {
    /** Key -> System.nanoTime() at which the latency probe's first step ran. */
    static final ConcurrentHashMap<Integer, Long> FIRST_STEP_AT = new ConcurrentHashMap<>();

    private final DBOS dbos;

    public BenchWorkflowsImpl(DBOS dbos) {
        this.dbos = dbos;
    }

    @Override
    @Workflow(name = "noopSteps")
    public int noopSteps(int n) {
        int sum = 0;
        for (int i = 0; i < n; i++) {
            final int v = i & 0xff;
            sum += dbos.runStep(() -> v, "noop");
        }
        return sum;
    }

    @Override
    @Workflow(name = "oneStep")
    public int oneStep(int i) {
        final int v = i & 0xff;
        return dbos.runStep(() -> v, "noop");
    }

    @Override
    @Workflow(name = "latencyProbe")
    public int latencyProbe(int key) {
        return dbos.runStep(() -> {
            FIRST_STEP_AT.putIfAbsent(key, System.nanoTime());
            return 1;
        }, "stamp");
    }
}
