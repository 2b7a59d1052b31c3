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

/**
 * What happened: to one run (a [RunEvent]), or to a worker's claims ([ClaimBatch]). Times are the
 * worker's estimate of the database clock.
 */
public sealed class StentEvent {
    /** An event about one run. */
    public sealed class RunEvent : StentEvent() {
        public abstract val runId: String
        public abstract val workflowName: String

        /**
         * Which execution of the run reported it: the fencing token of the claim that began it (each claim takes a
         * new one), so events of an execution that lost its lease are told from those of the one that took over;
         * 0 for events no execution reports (a client's start or cancel, a child's or a schedule's start).
         */
        public open val execution: Long get() = 0

        override fun toString(): String = "${javaClass.simpleName}($runId, $workflowName)"
    }

    /**
     * A worker's claim statement returned [size] runs (0: nothing was ready for it) after [durationNanos], asking
     * for up to [requested]. One per claim, busy or idle.
     */
    public class ClaimBatch internal constructor(
        public val workerId: String,
        public val requested: Int,
        public val size: Int,
        public val durationNanos: Long,
    ) : StentEvent() {
        override fun toString(): String = "ClaimBatch($workerId, $size of $requested)"
    }

    /**
     * A client started the run ([created] false: a run with that id existed already, and was left as it is), or a
     * run started it as a child, or a schedule did; [traceContext] is what [StentTracing.capture] gave (stored with the run).
     */
    public class RunStarted internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val queue: String,
        public val created: Boolean,
        public val traceContext: String? = null,
    ) : RunEvent()

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
        /** The trace context stored with the run when it was started (see [StentTracing]), or null. */
        public val traceContext: String? = null,
        /** The run that started this one as a child, or null. */
        public val parentId: String? = null,
        override val execution: Long = 0,
    ) : RunEvent()

    /** An attempt of a step body begins (not on replay: a recorded step does not run). */
    public class StepStarted internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val stepId: String,
        public val attempt: Int,
        override val execution: Long = 0,
    ) : RunEvent()

    /** An attempt of a step body returned and its result was recorded, [durationNanos] after it began. */
    public class StepCompleted internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val stepId: String,
        public val attempt: Int,
        public val durationNanos: Long,
        override val execution: Long = 0,
    ) : RunEvent()

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
        override val execution: Long = 0,
    ) : RunEvent() {
        /** True when the step is retried. */
        public val isRetrying: Boolean get() = retryAt != null
    }

    /** The run took signal [signalName] (not on replay); [traceContext] is the sender's (see [StentTracing]), or null. */
    public class SignalReceived internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val signalName: String,
        public val traceContext: String?,
        override val execution: Long = 0,
    ) : RunEvent()

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
        override val execution: Long = 0,
    ) : RunEvent()

    /**
     * The worker gave the run back unfinished, as [reason] says (it shuts down, the database failed, a body that
     * ignores interruption was abandoned, its outcome could not be written, or a signal or timer came due while it
     * unloaded): another claim resumes it from its records.
     */
    public class RunReleased internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val workerId: String,
        public val reason: String,
        override val execution: Long = 0,
    ) : RunEvent()

    /** The worker lost the run's lease (another worker took it over, or it could not renew it): it stops the run without writing. */
    public class LeaseLost internal constructor(
        override val runId: String,
        override val workflowName: String,
        public val workerId: String,
        override val execution: Long = 0,
    ) : RunEvent()

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
        override val execution: Long = 0,
    ) : RunEvent()
}
