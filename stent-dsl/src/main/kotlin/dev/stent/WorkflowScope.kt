package dev.stent

import java.time.Instant
import java.util.UUID
import kotlin.time.Duration

/**
 * What workflow code can do durably. Everything here is recorded, so a replay after a crash or an
 * unload gives the same answers without doing the work again.
 *
 * Code outside steps must be deterministic: it runs again on every replay. Do side effects inside
 * [step]; read time and randomness through [now], [random] and [randomUuid].
 *
 * Parallel branches (`coroutineScope { async { step("a") { … } } }`) run concurrently and replay
 * correctly, because steps are keyed by their explicit ids, not by position.
 */
@OptIn(ExperimentalSubclassOptIn::class)
@SubclassOptInRequired(InternalStentApi::class) // Stent implements it; user code only calls it
@StentDsl
public interface WorkflowScope {
    /** The run's id. */
    public val runId: String

    /** The workflow's name. */
    public val workflowName: String

    /**
     * Runs [block] once for this run and records its result under [id].
     *
     * On replay the recorded result is returned (or the recorded failure rethrown as a
     * [StepFailedException]) without running [block]. A body may run more than once if the
     * process dies after its side effect and before the checkpoint commits: pass
     * [StepScope.idempotencyKey] to external services. Failures are retried by [retry] (default:
     * the workflow's policy). [id] must be unique within the run.
     *
     * Cancellation: when the run is cancelled, unloaded or its worker shuts down, the body's
     * coroutine is cancelled and the thread it blocks on (JDBC, HTTP, `Thread.sleep`) is
     * interrupted; whatever it returns then is not recorded. With a [timeout], an attempt that
     * runs longer is cancelled the same way and fails with [StepTimeoutException], which [retry]
     * retries like any failure. Null or [Duration.INFINITE]: no timeout.
     *
     * With a [cache], a result another run stored under the same key within its TTL is recorded
     * instead of running [block], and a result computed here is stored for later runs (see [StepCache]).
     */
    public suspend fun <T> step(
        id: String,
        codec: Codec<T>,
        retry: RetryPolicy? = null,
        timeout: Duration? = null,
        cache: StepCache? = null,
        block: suspend StepScope.() -> T,
    ): T

    /**
     * Waits [duration] durably. A wait longer than the worker's in-memory threshold unloads the
     * run (status WAITING, no coroutine, no lease); any worker resumes it when the timer is due.
     * Zero returns at once; [Duration.INFINITE] sets no timer at all (only a cancel or the run's
     * deadline ends it); a finite duration beyond [TimeMath.MAX_DELAY] (1,000 years) counts as
     * that. A negative duration is an [InvalidArgumentException].
     * [id] names the timer in the records; by default sleeps are numbered in call order
     * (`sleep#1`, `sleep#2`, …), so give explicit ids to sleeps in parallel branches.
     */
    public suspend fun sleep(duration: Duration, id: String? = null)

    /** Waits until [instant] durably; see [sleep]. An instant in the past returns at once; `Instant.MAX` waits until 9999-12-31. */
    public suspend fun sleepUntil(instant: Instant, id: String? = null)

    /**
     * Waits for the next signal named [name] sent to this run with `client.signal(...)`, and
     * returns its payload. Signals are delivered once each, in the order sent; one sent before the
     * wait is kept for it, and each wait on the same name takes the next one. With a [timeout],
     * throws [SignalTimeoutException] when none arrives in time (recorded, so replay throws it
     * again). A zero timeout takes a signal that is already stored or times out at once; null or
     * [Duration.INFINITE] waits without a timer; a negative timeout is an [InvalidArgumentException]. A long wait unloads the run like [sleep]. [id] names the wait in the records; by
     * default waits are numbered per name in call order (`signal:approval#1`), so give explicit ids
     * to waits in parallel branches.
     */
    public suspend fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration? = null, id: String? = null): T

    /**
     * The current time, recorded on first call (database clock) and the same on every replay.
     * Recorded values are numbered in call order (`now#1`, …) unless given an [id]: give ids to
     * calls in parallel branches, whose order may differ between replays.
     */
    public suspend fun now(id: String? = null): Instant

    /** A random UUID, recorded on first call and the same on every replay; see [now] for [id]. */
    public suspend fun randomUuid(id: String? = null): UUID

    /** A random number in [0, 1), recorded on first call and the same on every replay; see [now] for [id]. */
    public suspend fun random(id: String? = null): Double

    /**
     * Starts a child run of [workflow] with [input]: a normal run that any worker registering the
     * workflow may claim. Its id is derived from this run's id and [id] (default
     * `child:<workflow name>#n`), so a replay, or a crash between starting it and recording it,
     * never starts two. The child inherits the workflow's queue and priority.
     *
     * An attached child (the default) is cancelled when this run finishes before it, or is
     * cancelled; a [detached] one outlives it. Await the output with [ChildRun.await].
     */
    public suspend fun <I, O> startChild(workflow: WorkflowDefinition<I, O>, input: I, id: String? = null, detached: Boolean = false): ChildRun<O>

    /** [startChild] by workflow name, for a workflow this process does not define; the codecs encode its input and decode its output. */
    public suspend fun <I, O> startChild(
        workflowName: String,
        input: I,
        inputCodec: Codec<I>,
        outputCodec: Codec<O>,
        id: String? = null,
        detached: Boolean = false,
    ): ChildRun<O>

    /**
     * Runs [workflow] once per input as attached children, spread over every worker that registers
     * it, and returns their outputs in input order. However many inputs, this run holds no
     * coroutine per child: it starts them in batches and collects their outputs as they finish,
     * unloading while it waits. The first child that fails fails the map with
     * [ChildFailedException] (the others are cancelled when this run finishes). [id] defaults to
     * `map:<workflow name>#n`.
     */
    public suspend fun <I, O> map(workflow: WorkflowDefinition<I, O>, inputs: List<I>, id: String? = null): List<O>

    /**
     * Publishes [value] as the run's event [key] (progress, a custom status) for clients to read
     * (`getEvent`) or wait for (`awaitEvent`), from any process. Each call is a new version (1, 2,
     * …), recorded like a step: a replay publishes nothing again.
     */
    public suspend fun <T> setEvent(key: String, value: T, codec: Codec<T>)

    /**
     * Which version of the change [changeId] this run follows, for changing a workflow while runs
     * are in flight. A run that reaches this call for the first time records [maxSupported] and
     * takes the new path; a run that had already gone past this point before the call existed (its
     * history has records beyond it) gets [DEFAULT_VERSION] and takes the old path. The answer is
     * recorded (`version:<changeId>`), so every replay takes the same path.
     *
     * Raise [minSupported] once no run on the old path is left: a run that recorded a version
     * below it then fails with [NonDeterminismException] instead of taking a path the code no
     * longer has (and `WorkflowReplayer` reports it before you deploy). Keep the call itself: the
     * recorded marker of a call that was removed is ignored, but the call costs nothing.
     */
    public suspend fun version(changeId: String, minSupported: Int, maxSupported: Int): Int

    /**
     * Ends this run and starts a fresh run of the same workflow with [input] (encoded with the
     * workflow's input codec) and an empty history, atomically: the new run's id is this run's id
     * with `~2`, `~3`, … (`RunInfo.continuedAs` names it); it keeps the queue, priority, parent and
     * trace. For workflows that loop forever (a subscription, a poller), so histories stay small.
     * Clients awaiting this run get the output of the last run of the chain; signals not yet taken
     * move to the new run, and signals sent to this id later follow it. Never returns.
     */
    public suspend fun continueAsNew(input: Any?): Nothing

    public companion object {
        /** What [version] returns for a run that went past the change before it existed: the code before the change. */
        public const val DEFAULT_VERSION: Int = 0
    }
}

/** True when this run takes the new path of [changeId]: `version(changeId, DEFAULT_VERSION, 1) == 1` (see [WorkflowScope.version]). */
public suspend fun WorkflowScope.patched(changeId: String): Boolean = version(changeId, WorkflowScope.DEFAULT_VERSION, 1) == 1

/** A child run started by [WorkflowScope.startChild]. */
@OptIn(ExperimentalSubclassOptIn::class)
@SubclassOptInRequired(InternalStentApi::class)
public interface ChildRun<O> {
    /** The child's run id: describe or signal it like any run. */
    public val runId: String

    /**
     * Waits for the child to finish and returns its output; this run unloads while it waits. Throws
     * [ChildFailedException] when the child failed or was cancelled. Recorded: a replay returns the
     * same output, or throws the same failure, without waiting.
     */
    public suspend fun await(): O
}

/** What a step body can see about the step it runs. */
@OptIn(ExperimentalSubclassOptIn::class)
@SubclassOptInRequired(InternalStentApi::class) // Stent implements it; user code only reads it
@StentDsl
public interface StepScope {
    /** The run's id. */
    public val runId: String

    /** The step's id. */
    public val stepId: String

    /** Which attempt this is, from 1. */
    public val attempt: Int

    /** `runId/stepId`: stable across attempts and replays; pass it to external services as an idempotency key. */
    public val idempotencyKey: String get() = "$runId/$stepId"
}

/** Runs [block] as a step whose result type [T] uses the kotlinx JSON codec; see [WorkflowScope.step]. */
@JvmSynthetic
public suspend inline fun <reified T> WorkflowScope.step(
    id: String,
    retry: RetryPolicy? = null,
    timeout: Duration? = null,
    cache: StepCache? = null,
    noinline block: suspend StepScope.() -> T,
): T = step(id, codecOf<T>(), retry, timeout, cache, block)

/** Starts a child run by workflow name with kotlinx-serializable input and output; see [WorkflowScope.startChild]. */
@JvmSynthetic
public suspend inline fun <reified I, reified O> WorkflowScope.startChild(
    workflowName: String,
    input: I,
    id: String? = null,
    detached: Boolean = false,
): ChildRun<O> = startChild(workflowName, input, codecOf<I>(), codecOf<O>(), id, detached)

/** Publishes a kotlinx-serializable [value] as event [key]; see [WorkflowScope.setEvent]. */
@JvmSynthetic
public suspend inline fun <reified T> WorkflowScope.setEvent(key: String, value: T): Unit = setEvent(key, value, codecOf<T>())

/** Runs [workflow] as a child and waits for its output: [WorkflowScope.startChild] then [ChildRun.await]. */
@JvmSynthetic
public suspend fun <I, O> WorkflowScope.child(workflow: WorkflowDefinition<I, O>, input: I, id: String? = null): O =
    startChild(workflow, input, id).await()

/** Waits for the next signal [name] with a kotlinx-serializable payload; see [WorkflowScope.awaitSignal]. */
@JvmSynthetic
public suspend inline fun <reified T> WorkflowScope.awaitSignal(name: String, timeout: Duration? = null, id: String? = null): T =
    awaitSignal(name, codecOf<T>(), timeout, id)
