package dev.stent.java

import dev.stent.Codec
import dev.stent.RetryPolicy
import dev.stent.StepCache
import java.time.Duration
import java.time.Instant
import java.util.UUID

/**
 * What a Java workflow can do durably: the Java face of the same engine Kotlin workflows use, with
 * the same records, replay and guarantees (see the Kotlin `WorkflowScope`). Every call blocks the
 * workflow's thread (a virtual thread on JDK 21+, a bounded pool on 17) until it is done.
 *
 * Code outside steps must be deterministic; do side effects in [step]. When a run is unloaded or
 * cancelled these calls throw `CancellationException`: let it propagate (do not catch
 * `RuntimeException` around them without rethrowing it). A step body that is running then has its
 * thread interrupted; what it returns afterwards is not recorded. None of these calls may be made
 * inside a step body: that is a `WorkflowMisuseException`, and it fails the run.
 */
public interface WorkflowContext {
    /** The run's id. */
    public val runId: String

    /** The workflow's name. */
    public val workflowName: String

    /**
     * Starts a child run of [workflow] (see the Kotlin `WorkflowScope.startChild`): any worker may
     * run it; its id is derived from this run and the call's id, so it is started once.
     */
    public fun <I, O> startChild(workflow: dev.stent.WorkflowDefinition<I, O>, input: I): ChildRef<O>

    /** [startChild] with the call's [id] (null: generated) and whether the child outlives this run ([detached]). */
    public fun <I, O> startChild(workflow: dev.stent.WorkflowDefinition<I, O>, input: I, id: String?, detached: Boolean): ChildRef<O>

    /** Runs [workflow] as a child and waits for its output; a failed or cancelled child throws `ChildFailedException`. */
    public fun <I, O> child(workflow: dev.stent.WorkflowDefinition<I, O>, input: I): O

    /** [child] with the call's [id] (the child's run id is `<this run's id>/<id>`). */
    public fun <I, O> child(workflow: dev.stent.WorkflowDefinition<I, O>, input: I, id: String): O

    /** Runs [workflow] once per input as children over the worker pool; the outputs in input order (see the Kotlin `map`). */
    public fun <I, O> map(workflow: dev.stent.WorkflowDefinition<I, O>, inputs: List<I>): List<O>

    /** [map] with the map's [id] (children are `<this run's id>/<id>/<index>`). */
    public fun <I, O> map(workflow: dev.stent.WorkflowDefinition<I, O>, inputs: List<I>, id: String): List<O>

    /** Publishes [value] as the run's event [key] for clients to read or await (see the Kotlin `WorkflowScope.setEvent`). */
    public fun setEvent(key: String, value: Any)

    /** Runs [body] once for this run and records its result under [id]; replay returns the record. */
    public fun <T : Any> step(id: String, resultType: Class<T>, body: StepSupplier<T>): T

    /** [step] with its own retry policy (see [RetryPolicies]). */
    public fun <T : Any> step(id: String, resultType: Class<T>, retry: RetryPolicy, body: StepSupplier<T>): T

    /**
     * [step] with an explicit [codec]: for generic results (`JavaCodecs.jackson(new TypeReference<List<Item>>() {})`)
     * or a codec of your own.
     */
    public fun <T> step(id: String, codec: Codec<T>, body: StepSupplier<T>): T

    /** [step] with an explicit [codec] and its own retry policy. */
    public fun <T> step(id: String, codec: Codec<T>, retry: RetryPolicy, body: StepSupplier<T>): T

    /**
     * [step] with a [timeout] per attempt (null: none) and a retry policy (null: the workflow's):
     * an attempt that runs longer is interrupted and fails with `StepTimeoutException`, which the
     * policy retries like any failure.
     */
    public fun <T : Any> step(id: String, resultType: Class<T>, retry: RetryPolicy?, timeout: Duration?, body: StepSupplier<T>): T

    /** [step] with an explicit [codec], a [timeout] per attempt and a retry policy, each nullable. */
    public fun <T> step(id: String, codec: Codec<T>, retry: RetryPolicy?, timeout: Duration?, body: StepSupplier<T>): T

    /**
     * [step] whose result is shared across runs under [cache]'s key for its TTL: a result stored by
     * another run is recorded instead of running [body] (see `StepCache`).
     */
    public fun <T : Any> step(id: String, resultType: Class<T>, cache: StepCache, body: StepSupplier<T>): T

    /** [step] with an explicit [codec], cached across runs under [cache]. */
    public fun <T> step(id: String, codec: Codec<T>, cache: StepCache, body: StepSupplier<T>): T

    /**
     * A step without a result: [body] runs once for this run and the step records only that it
     * finished. Named apart from [step] so that a lambda that returns a value can never be taken
     * for a step without one (and its value silently dropped).
     */
    public fun run(id: String, body: StepAction)

    /** `runId/stepId`: pass it to external services as an idempotency key. */
    public fun idempotencyKey(stepId: String): String = "$runId/$stepId"

    /** Waits [duration] durably; a long wait unloads the run. Sleeps are numbered in call order. */
    public fun sleep(duration: Duration)

    /** [sleep] with an explicit timer id. */
    public fun sleep(duration: Duration, id: String)

    /** Waits until [instant] durably. */
    public fun sleepUntil(instant: Instant)

    /** [sleepUntil] with an explicit timer id. */
    public fun sleepUntil(instant: Instant, id: String)

    /** Waits for the next signal [name] and decodes it as [type]. */
    public fun <T : Any> awaitSignal(name: String, type: Class<T>): T

    /** Like [awaitSignal], throwing `SignalTimeoutException` when none arrives within [timeout]. */
    public fun <T : Any> awaitSignal(name: String, type: Class<T>, timeout: Duration): T

    /** [awaitSignal] with a [codec] and a [timeout]. */
    public fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration): T

    /** Waits for the next signal [name] and decodes it with [codec] (for generic payloads). */
    public fun <T> awaitSignal(name: String, codec: Codec<T>): T

    /**
     * The general form: waits for the next signal [name], decoded with [codec], for at most [timeout]
     * (null: no limit), recorded under [id] (null: numbered in call order, `signal:name#n`). Waits in
     * parallel branches need explicit ids.
     */
    public fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration?, id: String?): T

    /** The time, recorded on first call. */
    public fun now(): Instant

    /** [now] recorded under [id] (calls in parallel branches need explicit ids). */
    public fun now(id: String): Instant

    /** A random UUID, recorded on first call. */
    public fun randomUuid(): UUID

    /** [randomUuid] recorded under [id]. */
    public fun randomUuid(id: String): UUID

    /** A random number in [0, 1), recorded on first call. */
    public fun random(): Double

    /** [random] recorded under [id]. */
    public fun random(id: String): Double

    /**
     * Which version of the change [changeId] this run follows (see the Kotlin `WorkflowScope.version`):
     * [maxSupported] for a run that reaches the call first, `DEFAULT_VERSION` (0) for a run that had gone
     * past it before it existed; recorded, so every replay takes the same path.
     */
    public fun version(changeId: String, minSupported: Int, maxSupported: Int): Int

    /** True when this run takes the new path of [changeId]: `version(changeId, 0, 1) == 1`. */
    public fun patched(changeId: String): Boolean = version(changeId, dev.stent.WorkflowScope.DEFAULT_VERSION, 1) == 1

    /**
     * Ends this run and starts a fresh run of the same workflow with [input] and an empty history
     * (see the Kotlin `WorkflowScope.continueAsNew`). Never returns normally: write
     * `return ctx.continueAsNew(next);` in a workflow body.
     */
    public fun <O> continueAsNew(input: Any?): O
}

/** A child run started by [WorkflowContext.startChild]. */
public interface ChildRef<O> {
    /** The child's run id. */
    public val runId: String

    /** Waits for the child's output (blocking the workflow's thread); a failed or cancelled child throws `ChildFailedException`. */
    public fun await(): O
}
