package dev.stent

import java.time.Instant

/**
 * Hears what happens to runs: register it with `stent.addListener(…)` (every run this installation
 * starts or executes) or `stentWorker { listener(…) }` (the runs one worker executes). Called on the
 * engine's threads, in the order a worker sees a run's events (a client's [StentEvent.RunStarted] comes after the
 * start committed, so it may follow the first claim): keep it quick and non-blocking (hand work
 * to a queue of your own). A listener that throws is logged and skipped; it never breaks a run.
 * With no listener registered no event is even built.
 */
public fun interface StentListener {
    public fun onEvent(event: StentEvent)
}

/** What happened to a run. Times are the worker's estimate of the database clock. */
public sealed class StentEvent {
    public abstract val runId: String
    public abstract val workflowName: String

    /** A client started the run ([created] false: a run with that id existed already, and was left as it is). */
    public class RunStarted internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val queue: String,
        public val created: Boolean,
    ) : StentEvent()

    /**
     * A worker claimed the run to execute it: its first execution, or a resumption that replays its
     * [records] recorded so far ([resumed]); [claimCount] is the poison guard's count.
     */
    public class RunClaimed internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val queue: String?,
        public val workerId: String,
        public val claimCount: Int,
        public val resumed: Boolean,
        public val records: Int,
    ) : StentEvent()

    /** An attempt of a step body begins (not on replay: a recorded step does not run). */
    public class StepStarted internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val stepId: String,
        public val attempt: Int,
    ) : StentEvent()

    /** An attempt of a step body returned and its result was recorded, [durationNanos] after it began. */
    public class StepCompleted internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val stepId: String,
        public val attempt: Int,
        public val durationNanos: Long,
    ) : StentEvent()

    /**
     * An attempt of a step body failed, [durationNanos] after it began: it is retried at [retryAt], or,
     * when that is null, the step failed for good.
     */
    public class StepFailed internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val stepId: String,
        public val attempt: Int,
        public val durationNanos: Long,
        public val failure: Failure,
        public val retryAt: Instant?,
    ) : StentEvent() {
        /** True when the step is retried. */
        public val isRetrying: Boolean get() = retryAt != null
    }

    /**
     * Every branch of the run waits: until [until] (null: only a signal ends it) and for [signals]. With
     * [unloaded] the run left its worker's memory (its row is WAITING, no lease); else it waits in memory.
     */
    public class RunWaiting internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val until: Instant?,
        public val signals: Set<String>,
        public val unloaded: Boolean,
    ) : StentEvent()

    /** The worker lost the run's lease (another worker took it over, or it could not renew it): it stops the run without writing. */
    public class LeaseLost internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val workerId: String,
    ) : StentEvent()

    /**
     * The run finished as [status] (COMPLETED, FAILED or CANCELLED), with its [failure] if any;
     * [durationMillis] since its first start, on the database clock, when known.
     */
    public class RunFinished internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val status: RunStatus,
        public val failure: Failure?,
        public val failureKind: FailureKind?,
        public val durationMillis: Long?,
    ) : StentEvent()

    override fun toString(): String = "${javaClass.simpleName}($runId, $workflowName)"
}
