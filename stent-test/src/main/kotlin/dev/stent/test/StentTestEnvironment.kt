@file:OptIn(InternalStentApi::class)

package dev.stent.test

import dev.stent.Codec
import dev.stent.InternalStentApi
import dev.stent.RecordInfo
import dev.stent.RunHandle
import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentClient
import dev.stent.StentOptions
import dev.stent.StentWorker
import dev.stent.StepScope
import dev.stent.WorkflowDefinition
import dev.stent.exposed.Stents
import dev.stent.java.FutureClient
import dev.stent.java.RunRef
import dev.stent.java.StepSupplier
import dev.stent.stentWorker
import dev.stent.store.RunRecord
import kotlinx.coroutines.delay
import kotlinx.coroutines.future.await
import kotlinx.coroutines.runBlocking
import java.nio.file.Files
import java.nio.file.Path
import java.time.Instant
import java.util.concurrent.atomic.AtomicLong
import java.util.function.Consumer
import java.util.function.LongSupplier
import kotlin.time.Duration
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource
import kotlin.time.toJavaDuration
import kotlin.time.toKotlinDuration

/**
 * Runs workflows on the real engine and a real SQLite file, on a virtual clock: a 30-day `sleep`,
 * a week-long signal timeout, retry back-offs and schedules pass in milliseconds of real time.
 *
 * Time moves only when the environment moves it: [await] (Java: [result]) lets every run go as far
 * as it can, and whenever nothing executes and nothing is due, moves the clock to the next timer,
 * back-off or schedule; [advanceTimeBy] moves it by a given amount, firing what comes due on the
 * way in order. The clock starts at [Builder.startTime] (the real time by default) and never
 * goes back. Workflow code, steps and clients are the same as in production: the same definition
 * runs unchanged on a real worker.
 *
 * One environment per test; [close] it (the JUnit 5 [StentExtension] and the Kotest
 * [StentKotestExtension] do). Drive it from one thread: the clock moves only inside its calls.
 */
public class StentTestEnvironment private constructor(builder: Builder) : AutoCloseable {
    /** What the environment runs: its workflows, stubs and worker settings. */
    public class Builder internal constructor() {
        internal val definitions = ArrayList<WorkflowDefinition<*, *>>()
        internal val stubs = ArrayList<StentWorker.Builder.() -> Unit>()
        internal var worker: StentWorker.Builder.() -> Unit = {}

        /** Where the virtual clock starts (default: the real time when the environment is created). */
        public var startTime: Instant = Instant.now()

        /** The folder for the SQLite file (default: a new temporary folder, deleted by [close]). */
        public var directory: Path? = null

        /** Registers [definition] with the environment's worker. */
        public fun register(definition: WorkflowDefinition<*, *>): Builder = apply { definitions += definition }

        /** Registers each of [definitions]. */
        public fun register(vararg definitions: WorkflowDefinition<*, *>): Builder = apply { definitions.forEach { register(it) } }

        /**
         * Runs [body] instead of step [stepId] of [workflow] in this environment: the step is recorded
         * with its result (or failure, retried by the step's policy) as if its own body had run.
         */
        @JvmSynthetic
        public fun <T> stubStep(workflow: WorkflowDefinition<*, *>, stepId: String, body: suspend StepScope.() -> T): Builder = apply {
            stubs += { stubStep(workflow.name, stepId, body) }
        }

        /** [stubStep] for Java. */
        public fun <T> stubStep(workflow: WorkflowDefinition<*, *>, stepId: String, body: StepSupplier<T>): Builder = apply {
            stubs += { stubStep(workflow.name, stepId) { body.get() } }
        }

        /**
         * Replaces [workflow] with [body] in this environment: runs of it (children a parent starts, or
         * runs started by name) execute [body] instead, with the same name, codecs and options.
         */
        @JvmSynthetic
        public fun <I, O> stubWorkflow(workflow: WorkflowDefinition<I, O>, body: suspend (I) -> O): Builder = apply {
            definitions.removeAll { it.name == workflow.name }
            definitions += WorkflowDefinition.of(workflow.name, workflow.inputCodec, workflow.outputCodec, {
                queue = workflow.queue
                priority = workflow.priority
                timeout = workflow.timeout
                retryPolicy = workflow.retryPolicy
            }) { input -> body(input) }
        }

        /** [stubWorkflow] for Java. */
        public fun <I, O> stubWorkflow(workflow: WorkflowDefinition<I, O>, body: java.util.function.Function<I, O>): Builder =
            stubWorkflow(workflow) { input: I -> body.apply(input) }

        /** More settings for the environment's worker (concurrency, queues, listeners, …). */
        @JvmSynthetic
        public fun worker(configure: StentWorker.Builder.() -> Unit): Builder = apply { worker = configure }

        /** [worker] for Java. */
        public fun worker(configure: Consumer<StentWorker.Builder>): Builder = apply { worker = { configure.accept(this) } }
    }

    private val ownsDirectory = builder.directory == null
    private val registered = builder.definitions.map { it.name }.toSet()
    private val directory: Path = builder.directory ?: Files.createTempDirectory("stent-test")
    private val clockMs = AtomicLong(builder.startTime.toEpochMilli())

    /** The installation: a SQLite file on the virtual clock. */
    public val stent: Stent = Stents.sqliteWithClock(directory.resolve("stent.db").toString(), StentOptions(), LongSupplier { clockMs.get() })

    /** Starts, signals, describes runs (Kotlin). Awaiting through it does not move time: use [await]. */
    @get:JvmSynthetic
    public val client: StentClient get() = stent.client

    /** The same for Java. Awaiting a [RunRef] through it does not move time: use [result]. */
    public val futures: FutureClient = FutureClient.of(stent)

    private val worker: StentWorker = try {
        stentWorker(stent) {
            builder.definitions.forEach { register(it) }
            builder.stubs.forEach { it() }
            builder.worker(this)
            // every wait leaves memory, so "every run waits" is what the database says
            unloadThreshold = Duration.ZERO
            // the clock jumps only while no run executes; a long lease keeps a slow step safe when advanceTimeBy jumps past it
            leaseDuration = 1.days
            pollInterval = 200.milliseconds
        }
    } catch (e: Throwable) {
        stent.close()
        throw e
    }

    /** The virtual time now. */
    public val now: Instant get() = Instant.ofEpochMilli(clockMs.get())

    // ---- Kotlin ------------------------------------------------------------------------------

    /**
     * Waits for run [handle]'s output (of the last run of its chain, when it continued as new),
     * moving the clock whenever every run waits. Throws the run's failure as
     * `WorkflowFailedException`, like `RunHandle.await`; [StuckRunException] when every run waits
     * for something no timer brings (a signal nobody sends); `AwaitTimeoutException` after
     * [timeout] of real time.
     */
    public suspend fun <O> await(handle: RunHandle<O>, timeout: Duration = DEFAULT_TIMEOUT): O {
        driveUntilFinished(handle.id, timeout)
        return handle.await(Duration.ZERO)
    }

    /** [await] of run [runId], decoding its output with [codec]. */
    public suspend fun <O> await(runId: String, codec: Codec<O>, timeout: Duration = DEFAULT_TIMEOUT): O = await(client.handle(runId, codec), timeout)

    /**
     * Lets every run go as far as it can without moving the clock: returns once nothing executes
     * and nothing is due (every run waits, or finished).
     */
    public suspend fun runUntilIdle(timeout: Duration = DEFAULT_TIMEOUT) {
        settled(TimeSource.Monotonic.markNow(), timeout)
    }

    /**
     * Moves the clock forward by [duration]: first lets every run go as far as it can, then moves to
     * each timer, back-off or schedule due within [duration] in turn (letting runs go on after
     * each), then to the end.
     */
    public suspend fun advanceTimeBy(duration: Duration, timeout: Duration = DEFAULT_TIMEOUT) {
        if (duration.isNegative() || duration.isInfinite()) {
            throw IllegalArgumentException("advanceTimeBy: duration must be finite and not negative, was $duration; the virtual clock never goes back")
        }
        val target = clockMs.get() + duration.inWholeMilliseconds
        val started = TimeSource.Monotonic.markNow()
        while (true) {
            val settled = settled(started, timeout)
            val next = nextMove(settled)?.takeIf { it <= target } ?: break
            moveTo(next)
        }
        moveTo(target)
        runUntilIdle(timeout)
    }

    /** Every record of run [runId], oldest first. */
    public suspend fun records(runId: String): List<RecordInfo> = client.describe(runId).records

    // ---- Java --------------------------------------------------------------------------------

    /** [await] for Java: blocks until the run's output, moving the clock whenever every run waits. */
    public fun <O> result(run: RunRef<O>): O = result(run, DEFAULT_TIMEOUT.toJavaDuration())

    /** [result] giving up after [timeout] of real time. */
    public fun <O> result(run: RunRef<O>, timeout: java.time.Duration): O = runBlocking {
        driveUntilFinished(run.id, timeout.toKotlinDuration())
        run.result(java.time.Duration.ZERO).await()
    }

    /** [advanceTimeBy] for Java. */
    public fun advanceTime(duration: java.time.Duration): Unit = runBlocking { advanceTimeBy(duration.toKotlinDuration()) }

    /** [runUntilIdle] for Java. */
    public fun waitUntilIdle(): Unit = runBlocking { runUntilIdle() }

    /** [records] for Java. */
    public fun recordsOf(runId: String): List<RecordInfo> = runBlocking { records(runId) }

    // ---- the clock ---------------------------------------------------------------------------

    private suspend fun driveUntilFinished(runId: String, timeout: Duration) {
        val started = TimeSource.Monotonic.markNow()
        var current = runId
        while (true) {
            val run = stent.store.getRun(current) ?: throw dev.stent.UnknownRunException(current, "no run '$current' in this test environment")
            if (run.status.isFinished) {
                current = run.continuedAs ?: return
                continue
            }
            val settled = settled(started, timeout, awaiting = runId, untilFinished = current)
            if (settled.finished) continue
            val next = nextMove(settled)
            if (next != null) {
                moveTo(next)
                continue
            }
            // nothing moves any more: unless the run finished between the two reads, it never will
            val now = stent.store.getRun(current) ?: continue
            if (!now.status.isFinished) throw StuckRunException(current, stuck(now))
        }
    }

    /**
     * A timeline once nothing executes: nothing is due now, or what is due waits for a queue's rate
     * limit, whose window the clock crosses in steps of [stepMs].
     */
    private class Settled(val timeline: dev.stent.store.Timeline, val stepMs: Long?, val finished: Boolean)

    /**
     * Waits until no run executes and none is due, or what is due stays untaken for [HELD_POLLS]
     * polls (a queue's rate limit holds it: time has to move for it); with [untilFinished], returns
     * early once that run finished.
     */
    private suspend fun settled(
        started: TimeSource.Monotonic.ValueTimeMark,
        timeout: Duration,
        awaiting: String? = null,
        untilFinished: String? = null,
    ): Settled {
        var held = 0
        while (true) {
            if (untilFinished != null && stent.store.getRun(untilFinished)?.status?.isFinished == true) {
                return Settled(stent.store.timeline(), stepMs = null, finished = true)
            }
            val timeline = stent.store.timeline()
            if (timeline.running == 0L && timeline.dueNow == 0L) return Settled(timeline, stepMs = null, finished = false)
            held = if (timeline.running == 0L) held + 1 else 0
            if (held >= HELD_POLLS) {
                held = 0
                rateStep(timeline.dbNowMs)?.let { return Settled(timeline, stepMs = it, finished = false) }
            }
            pause(started, timeout) { if (awaiting != null) dev.stent.AwaitTimeoutException(awaiting, timeout) else notIdle(timeout) }
        }
    }

    /**
     * Due runs nothing takes, though nothing executes: when each waits in a queue with a rate limit, a
     * tenth of the shortest window (time must pass for them); when one's workflow is not registered,
     * an error that says so; else null (keep waiting).
     */
    private suspend fun rateStep(nowMs: Long): Long? {
        val due = listOf(RunStatus.PENDING, RunStatus.WAITING).flatMap { client.list(status = it, limit = 1_000) }
            .filter { r -> r.readyAt?.let { it.toEpochMilli() <= nowMs } ?: false }
        due.firstOrNull { it.workflowName !in registered }?.let {
            throw IllegalStateException(
                "run '${it.id}' of workflow '${it.workflowName}' is due, but no workflow of that name is registered with the test environment: " +
                    "register it, or replace it with stubWorkflow",
            )
        }
        val periods = client.listQueues().mapNotNull { q -> q.limits?.ratePeriod?.let { q.queue to it.inWholeMilliseconds } }.toMap()
        if (due.isEmpty() || due.any { it.queue !in periods }) return null
        return (due.minOf { periods.getValue(it.queue) } / 10).coerceAtLeast(1)
    }

    /** Where the clock moves next: the next timer, or a step across a rate limit's window for runs it holds. */
    private fun nextMove(settled: Settled): Long? {
        val next = settled.timeline.nextDueAt
        val step = settled.stepMs ?: return next
        val nudge = settled.timeline.dbNowMs + step
        return if (next == null) nudge else minOf(next, nudge)
    }

    private fun stuck(run: RunRecord): String {
        val waiting = run.waitSignals.takeIf { it.isNotEmpty() }?.let { "signals $it" } ?: "something no timer brings"
        return "run '${run.id}' of workflow '${run.workflowName}' is ${run.status} and can never finish: every run waits, no timer or " +
            "schedule is due, and it waits for $waiting. Send the signal (client.signal) before awaiting, or check that its workflow " +
            "and its children's are registered with the environment"
    }

    private fun moveTo(ms: Long) {
        clockMs.accumulateAndGet(ms, ::maxOf)
        stent.clockMoved()
    }

    private suspend fun pause(started: TimeSource.Monotonic.ValueTimeMark, timeout: Duration, timedOut: () -> Throwable) {
        if (started.elapsedNow() > timeout) throw timedOut()
        delay(POLL)
    }

    private fun notIdle(timeout: Duration) = IllegalStateException(
        "runs still execute or are due after $timeout of real time: a step that does not return, or a run whose workflow " +
            "is not registered with the environment (describe the PENDING runs to see which)",
    )

    /** Stops the worker, closes the store and deletes the temporary folder. */
    override fun close() {
        try {
            worker.close()
        } finally {
            stent.close()
            if (ownsDirectory) directory.toFile().deleteRecursively()
        }
    }

    public companion object {
        /** How long [await], [result] and [advanceTimeBy] wait in real time by default. */
        public val DEFAULT_TIMEOUT: Duration = 30.seconds
        private val POLL = 2.milliseconds

        /** Polls (of [POLL] or more) a due run may stay untaken, nothing executing, before time moves for it. */
        private const val HELD_POLLS = 50

        /** Creates an environment (Kotlin: `StentTestEnvironment { register(order) }`). */
        @JvmSynthetic
        public operator fun invoke(configure: Builder.() -> Unit = {}): StentTestEnvironment = StentTestEnvironment(Builder().apply(configure))

        /** Creates an environment (Java: `StentTestEnvironment.create(b -> b.register(ORDER))`). */
        @JvmStatic
        public fun create(configure: Consumer<Builder>): StentTestEnvironment = StentTestEnvironment(Builder().also { configure.accept(it) })
    }
}

/** Thrown by [StentTestEnvironment.await] when the run waits for something nothing will bring: no run executes and no timer is due. */
public class StuckRunException(public val runId: String, message: String) : IllegalStateException(message)
