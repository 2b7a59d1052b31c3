package dev.stent

import java.time.Instant
import kotlin.time.Duration

/**
 * Starts runs and talks to them. Obtain it from [Stent.client]. Thread-safe; every call is one
 * short database transaction.
 */
@OptIn(ExperimentalSubclassOptIn::class)
@SubclassOptInRequired(InternalStentApi::class) // Stent implements it; user code only calls it
public interface StentClient {
    /**
     * Starts a run of [workflow] with [input]. With an [id] that exists already, returns a handle to
     * the existing run and changes nothing (idempotent start). A [partitionKey] (a customer, an
     * account) is what a queue's `concurrencyPerKey` limit counts. [queue] and [priority] default to
     * the workflow's; [delay] postpones the first claim (at most 1,000 years: longer, and
     * [Duration.INFINITE], count as that). A [deadline] (default: the workflow's `timeout` after
     * the start) cancels the run durably when it passes, wherever the run is; `await()` then
     * throws [WorkflowCancelledException] naming the deadline.
     */
    public suspend fun <I, O> start(
        workflow: WorkflowDefinition<I, O>,
        input: I,
        id: String? = null,
        queue: String? = null,
        priority: Int? = null,
        delay: Duration? = null,
        deadline: Instant? = null,
        partitionKey: String? = null,
    ): RunHandle<O>

    /**
     * Starts a run of the workflow named [workflowName], which need not be known in this process.
     * A run that no worker registered stays PENDING and visible until one does: `describe()` says
     * so in [RunInfo.diagnosis]. The workflow's own defaults (queue, priority, timeout) are not
     * known here; pass them.
     */
    public suspend fun <I, O> start(
        workflowName: String,
        input: I,
        inputCodec: Codec<I>,
        outputCodec: Codec<O>,
        id: String? = null,
        queue: String? = null,
        priority: Int? = null,
        delay: Duration? = null,
        deadline: Instant? = null,
        partitionKey: String? = null,
    ): RunHandle<O>

    /** A handle to an existing run whose output uses [outputCodec]. Does not check that the run exists. */
    public fun <O> handle(runId: String, outputCodec: Codec<O>): RunHandle<O>

    /**
     * Sends signal [name] with [payload] to run [runId]. Stored durably; delivered once, in order,
     * to the run's next `awaitSignal(name)`. Throws [UnknownRunException] when there is no such
     * run or it has finished.
     */
    public suspend fun <T> signal(runId: String, name: String, payload: T, codec: Codec<T>)

    /**
     * Waits until run [runId] finishes and returns its output, or throws [WorkflowFailedException]
     * / [WorkflowCancelledException]. Woken at once when the run finishes in this JVM; otherwise it
     * polls with back-off. Throws [AwaitTimeoutException] after [timeout] (the run goes on); a zero
     * timeout looks once, null or [Duration.INFINITE] waits for good.
     */
    public suspend fun <O> await(runId: String, outputCodec: Codec<O>, timeout: Duration? = null): O

    /** The run's status, timestamps, attempts, failure and records. Throws [UnknownRunException]. */
    public suspend fun describe(runId: String): RunInfo

    /**
     * Run [runId]'s history as recorded, to keep as JSON and check a new version of its workflow
     * against with [WorkflowReplayer]. Throws [UnknownRunException].
     */
    public suspend fun history(runId: String): RunHistory

    /** The latest version of run [runId]'s event [key] (see `WorkflowScope.setEvent`), or null when none was published. */
    public suspend fun <T> getEvent(runId: String, key: String, codec: Codec<T>): RunEvent<T>?

    /**
     * Waits until run [runId] has published a version of event [key] after [afterVersion] and
     * returns the next one (version `afterVersion + 1`), so a loop that passes the last version it
     * saw sees every value in order. Returns null when the run finished without publishing it;
     * throws [AwaitTimeoutException] after [timeout]. Another process's events are seen within
     * about a second.
     */
    public suspend fun <T> awaitEvent(runId: String, key: String, codec: Codec<T>, afterVersion: Long = 0, timeout: Duration? = null): RunEvent<T>?

    /**
     * Runs newest first, filtered by [status], [workflowName], [parentId] (the children of a run),
     * [queue], [failureKind] (FAILED runs that failed for that reason) and creation time (at or after
     * [createdAfter], before [createdBefore]) when given, [limit] at a time from [offset]. For the page
     * after a run, pass its `createdAt` as [createdBefore] and its id as [beforeId] (the runs of the same
     * millisecond that sort after it come too): that page costs the same however deep it is. The returned
     * [RunInfo]s carry no records (describe a run for those).
     */
    public suspend fun list(
        status: RunStatus? = null,
        workflowName: String? = null,
        limit: Int = 100,
        offset: Int = 0,
        parentId: String? = null,
        queue: String? = null,
        failureKind: FailureKind? = null,
        createdAfter: Instant? = null,
        createdBefore: Instant? = null,
        beforeId: String? = null,
    ): List<RunInfo>

    /**
     * Runs counted by workflow and status, the oldest pending run and how many finished lately. One grouped
     * scan of every run: cheap for thousands, tens of milliseconds for 100,000; poll it sparingly.
     */
    public suspend fun stats(): StentStats

    /**
     * The dead letters: FAILED runs not [discard]ed, newest first, of [failureKind] when given. Each
     * carries its failure; `describe(id)` shows its history. [retry] or [discard] each.
     */
    public suspend fun deadLetters(failureKind: FailureKind? = null, limit: Int = 100, offset: Int = 0): List<RunInfo>

    /**
     * Runs a FAILED run again from where it failed: every completed step keeps its record and is not
     * run again; the step that failed it runs again with its attempts counted from zero (a failure
     * of the workflow code itself, or of the poison guard, resumes by replay: deploy the fix first).
     * The retry is counted in [RunInfo.retries]. Idempotent: a run that is not FAILED (already
     * retried) is left as it is. Returns the status after the call. Throws [UnknownRunException].
     */
    public suspend fun retry(runId: String): RunStatus

    /**
     * Marks a FAILED run handled: it leaves [deadLetters] (it stays FAILED, with [RunInfo.discardedAt]
     * set). Idempotent; a run that is not FAILED is left as it is. Returns its status. Throws [UnknownRunException].
     */
    public suspend fun discard(runId: String): RunStatus

    /**
     * Deletes a finished run with its records and signals. A run that has not finished is not
     * deleted: cancel it first ([RunConflictException]). Throws [UnknownRunException] when there is no such run.
     */
    public suspend fun delete(runId: String)

    /** Stores [limits] for their queue: every worker's claim applies them from its next claim (within a second). */
    public suspend fun setQueueLimits(limits: QueueLimits)

    /** Removes every limit of [queue]. */
    public suspend fun removeQueueLimits(queue: String)

    /** Every queue that has limits or unfinished runs, with its limits and counts of runs pending, running and waiting. */
    public suspend fun listQueues(): List<QueueInfo>

    /**
     * Creates or replaces schedule [name]: a run of [workflow] with [input] at every tick of [cron]
     * (5 fields `minute hour day month weekday`, or 6 with seconds first) read in [zone]. Workers fire
     * it: exactly one run per tick across all of them, with id `schedule:<name>@<tick instant>`. Ticks
     * missed while no worker ran are skipped, except the newest, and up to [catchUp] before it
     * (0 to 1,000). Replacing a schedule with the same expression and zone keeps its next tick (so an
     * application may declare its schedules at every start); a paused one stays paused.
     */
    public suspend fun <I> schedule(
        name: String,
        cron: String,
        workflow: WorkflowDefinition<I, *>,
        input: I,
        zone: java.time.ZoneId = java.time.ZoneOffset.UTC,
        catchUp: Int = 0,
        queue: String? = null,
        priority: Int? = null,
    ): ScheduleInfo

    /** Every schedule, by name, with its next tick. */
    public suspend fun listSchedules(): List<ScheduleInfo>

    /** Stops schedule [name] from firing until [resumeSchedule]. Throws [UnknownScheduleException]. */
    public suspend fun pauseSchedule(name: String)

    /** Fires schedule [name] again from its next tick after now (ticks while paused are not started). Throws [UnknownScheduleException]. */
    public suspend fun resumeSchedule(name: String)

    /** Deletes schedule [name]; the runs it started stay. Returns false when there was none. */
    public suspend fun deleteSchedule(name: String): Boolean

    /**
     * Cancels run [runId]: a PENDING or WAITING run is CANCELLED at once. A RUNNING one is flagged;
     * its worker cancels the run's coroutine as soon as it learns of it (at once in this JVM or
     * through PostgreSQL wake-ups, else at its next heartbeat, and in any case at the run's next
     * claim if its worker dies first): a step body in progress is cancelled, its thread
     * interrupted, whatever it returns is not recorded, and the run goes CANCELLED. A body that
     * ignores the interruption is abandoned after the worker's `stopTimeout`, and the run goes
     * CANCELLED all the same. Returns the status after the call; a finished run is left as it is.
     * Throws [UnknownRunException].
     */
    public suspend fun cancel(runId: String): RunStatus
}

/** Sends a kotlinx-serializable signal payload; see [StentClient.signal]. */
@JvmSynthetic
public suspend inline fun <reified T> StentClient.signal(runId: String, name: String, payload: T): Unit =
    signal(runId, name, payload, codecOf<T>())

/** Starts a run by workflow name with kotlinx-serializable input and output; see [StentClient.start]. */
@JvmSynthetic
public suspend inline fun <reified I, reified O> StentClient.startByName(
    workflowName: String,
    input: I,
    id: String? = null,
    queue: String? = null,
    priority: Int? = null,
    delay: Duration? = null,
    deadline: Instant? = null,
    partitionKey: String? = null,
): RunHandle<O> = start(workflowName, input, codecOf<I>(), codecOf<O>(), id, queue, priority, delay, deadline, partitionKey)

/** A started run. */
@OptIn(ExperimentalSubclassOptIn::class)
@SubclassOptInRequired(InternalStentApi::class) // Stent implements it; user code only calls it
public interface RunHandle<O> {
    /** The run's id. */
    public val id: String

    /** Waits for the output; see [StentClient.await]. */
    public suspend fun await(timeout: Duration? = null): O

    /** See [StentClient.describe]. */
    public suspend fun describe(): RunInfo

    /** See [StentClient.cancel]. */
    public suspend fun cancel(): RunStatus
}

/** One version of a run's event: its [value], its [version] (1, 2, …) and when it was published. */
public class RunEvent<T> internal constructor(public val value: T, public val version: Long, public val publishedAt: Instant) {
    override fun toString(): String = "RunEvent(version=$version, value=$value)"
}

/** A run as [StentClient.describe] shows it. */
public class RunInfo internal constructor(
    public val id: String,
    public val workflowName: String,
    public val status: RunStatus,
    public val queue: String,
    public val priority: Int,
    public val createdAt: Instant,
    public val startedAt: Instant?,
    public val updatedAt: Instant,
    public val finishedAt: Instant?,
    /**
     * When a PENDING or WAITING run goes on; null when only a signal wakes it. A run waiting in its
     * worker's memory for a second or more also reads WAITING, with this set.
     */
    public val readyAt: Instant?,
    /** Claims since the run was last unloaded or released cleanly (the poison guard's count). */
    public val claimCount: Int,
    /** The worker holding the lease of a RUNNING run. */
    public val leaseOwner: String?,
    /** The failure of a FAILED run. */
    public val failure: Failure?,
    /** The encoded input. */
    public val input: String,
    /** The encoded output of a COMPLETED run. */
    public val output: String?,
    /** Every record, oldest first (empty in [StentClient.list] results). */
    public val records: List<RecordInfo>,
    /** When the run's deadline passes, if it has one. */
    public val deadline: Instant? = null,
    /**
     * Why a run is not moving, when `describe()` can tell: for a PENDING run that no live worker
     * serves, "no worker has registered workflow 'x' …" with when one was last seen. Null otherwise
     * (and in [StentClient.list] results).
     */
    public val diagnosis: String? = null,
    /**
     * The signal names a WAITING run waits for (empty when it waits only for a time, or is not
     * WAITING). With [readyAt], what the run waits for and until when.
     */
    public val waitingForSignals: Set<String> = emptySet(),
    /** The run that started this one as a child, or null. */
    public val parentId: String? = null,
    /**
     * The ids of the runs this one started as children, oldest first: at most 1,000 (list them with
     * `list(parentId = id)` for more). Empty in [StentClient.list] results.
     */
    public val children: List<String> = emptyList(),
    /** The partition key given at start, or null. */
    public val partitionKey: String? = null,
    /** Why a FAILED run failed, or null. */
    public val failureKind: FailureKind? = null,
    /** How many times the run was retried after failing ([StentClient.retry]). */
    public val retries: Int = 0,
    /** When a FAILED run was discarded ([StentClient.discard]), or null. */
    public val discardedAt: Instant? = null,
    /**
     * The next run of the chain when this one called `continueAsNew` (it is COMPLETED without an
     * output; awaiting it awaits the chain's last run), or null.
     */
    public val continuedAs: String? = null,
) {
    override fun toString(): String = "RunInfo(id=$id, workflow=$workflowName, status=$status, records=${records.size})"
}

/** One record of a run's history: a step, a sleep, a signal wait or a recorded value, as [StentClient.describe] shows it. */
public class RecordInfo internal constructor(
    public val id: String,
    /** What the record is: a step, a sleep, a signal wait, a recorded value. */
    public val kind: RecordKind,
    public val status: RecordStatus,
    public val attempts: Int,
    /** The encoded result. */
    public val result: String?,
    public val failure: Failure?,
    /** When the timer, deadline or next attempt is due. */
    public val wakeAt: Instant?,
    public val updatedAt: Instant,
    /** When it was first written (a step's first attempt began just before), or null when the store does not say. */
    public val createdAt: Instant? = null,
) {
    override fun toString(): String = "RecordInfo($id, $kind, $status, attempts=$attempts)"
}

/** The latest value of event [key] with a kotlinx-serializable type; see [StentClient.getEvent]. */
@JvmSynthetic
public suspend inline fun <reified T> StentClient.getEvent(runId: String, key: String): RunEvent<T>? = getEvent(runId, key, codecOf<T>())

/** Waits for the version of event [key] after [afterVersion]; see [StentClient.awaitEvent]. */
@JvmSynthetic
public suspend inline fun <reified T> StentClient.awaitEvent(runId: String, key: String, afterVersion: Long = 0, timeout: Duration? = null): RunEvent<T>? =
    awaitEvent(runId, key, codecOf<T>(), afterVersion, timeout)

/** A schedule as [StentClient.listSchedules] shows it. */
public class ScheduleInfo internal constructor(
    public val name: String,
    public val cron: String,
    public val zone: java.time.ZoneId,
    public val workflowName: String,
    public val queue: String,
    public val catchUp: Int,
    public val paused: Boolean,
    /** When the next tick is due (null: the expression has no more); a paused schedule does not fire it. */
    public val nextFireAt: Instant?,
    /** The last tick a run was started for, or null. */
    public val lastFireAt: Instant?,
) {
    override fun toString(): String = "ScheduleInfo($name, '$cron' in $zone, workflow=$workflowName, paused=$paused, next=$nextFireAt)"
}
