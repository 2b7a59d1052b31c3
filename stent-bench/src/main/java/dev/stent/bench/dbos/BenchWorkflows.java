package dev.stent.bench.dbos;

/** The workflows the DBOS harness runs; DBOS proxies this interface. */
public interface BenchWorkflows {
    /** Runs {@code n} sequential no-op steps; returns the sum of their results. */
    int noopSteps(int n);

    /** One no-op step. */
    int oneStep(int i);

    /** Starts {@code n} oneStep workflows as children on the bench queue, awaits them all, returns the sum. */
    long mapFanout(int n);

    /** First step stores {@code System.nanoTime()} under {@code key}; then returns. */
    int latencyProbe(int key);
}
