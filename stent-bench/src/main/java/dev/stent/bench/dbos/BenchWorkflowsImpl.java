package dev.stent.bench.dbos;

import dev.dbos.transact.DBOS;
import dev.dbos.transact.workflow.Workflow;

import java.util.concurrent.ConcurrentHashMap;

/** Implementations: every step is a DBOS step (checkpointed by DBOS) that does no work. */
public final class BenchWorkflowsImpl implements BenchWorkflows {
    /** Key -> System.nanoTime() at which the latency probe's first step ran. */
    static final ConcurrentHashMap<Integer, Long> FIRST_STEP_AT = new ConcurrentHashMap<>();

    private final DBOS dbos;

    /** The proxy DBOS made of this object (children must be started through it) and the queue they go on. */
    static volatile BenchWorkflows self;
    static volatile dev.dbos.transact.workflow.Queue queue;

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
    @Workflow(name = "mapFanout")
    public long mapFanout(int n) {
        var opts = new dev.dbos.transact.StartWorkflowOptions(queue);
        var handles = new java.util.ArrayList<dev.dbos.transact.workflow.WorkflowHandle<Integer, RuntimeException>>(n);
        for (int i = 0; i < n; i++) {
            final int v = i;
            handles.add(dbos.startWorkflow(() -> self.oneStep(v), opts));
        }
        long sum = 0;
        for (var h : handles) {
            sum += h.getResult();
        }
        return sum;
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
