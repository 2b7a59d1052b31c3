package dev.stent.store

import dev.stent.RecordKind
import dev.stent.RunStatus

/**
 * The persistence SPI the engine runs on. Every method is one transaction, blocking, and safe to
 * call from many threads; the engine calls it on a bounded dispatcher of [maxConnections] threads.
 *
 * Every write on behalf of a running run carries the fencing token it got from [claim] and
 * changes nothing when the token no longer matches. Failures of the database surface as
 * [dev.stent.StentStoreException].
 */
public interface WorkflowStore : AutoCloseable {
    /** How many operations can run at once (the connection pool size). */
    public val maxConnections: Int

    /** The database clock, epoch milliseconds. */
    public fun dbNowMs(): Long

    /**
     * Creates a run, or returns the existing one with the same id unchanged. With [NewRun.claimFor] a store may
     * create it claimed (RUNNING, fencing token 1, its lease starting now) and say so in [CreateRunResult.claimed];
     * a store that does not, or a queue with limits, creates it PENDING.
     */
    public fun createRun(run: NewRun): CreateRunResult

    /**
     * [createRun] for several runs in one transaction (group commit), one result per run in order;
     * a later run with the id of an earlier one in the list is not created. Applies nothing when it
     * throws. The default creates them one by one.
     */
    public fun createRuns(runs: List<NewRun>): List<CreateRunResult> = runs.map(::createRun)

    /**
     * Claims up to `limit` runnable runs (PENDING or WAITING and ready, or RUNNING with an
     * expired lease) of the requested workflows and queues, highest priority then earliest ready
     * first, and loads all of their records. One transaction.
     */
    public fun claim(request: ClaimRequest): ClaimResult

    /** Writes [record] for [runId] if [fencingToken] still holds the lease. A final record is never overwritten. */
    public fun checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome

    /**
     * [checkpoint] for several runs in one transaction (group commit), one outcome per write in
     * order; at most one write per run. Applies nothing when it throws. The default writes them one by one.
     */
    public fun checkpoints(writes: List<CheckpointWrite>): List<WriteOutcome> =
        writes.map { checkpoint(it.runId, it.fencingToken, it.record) }

    /**
     * Takes the oldest unconsumed signal [name] of [runId] and records it as [stepId], in one
     * transaction. Returns the new record, or null when no such signal is stored.
     * Throws [LeaseLostException] when [fencingToken] no longer holds the lease.
     */
    public fun consumeSignal(runId: String, fencingToken: Long, name: String, stepId: String): StoredRecord?

    /** The records of run [runId]'s event [key], oldest version first (see [EventRecords]). The default filters [listRecords]. */
    public fun listEvents(runId: String, key: String): List<StoredRecord> =
        listRecords(runId).filter { it.kind == RecordKind.EVENT && EventRecords.version(key, it.stepId) != null }
            .sortedBy { EventRecords.version(key, it.stepId) }

    /**
     * Takes up to [limit] unconsumed signals of [runId] whose names start with [namePrefix], oldest
     * first, and records each, in one transaction, as a COMPLETED record of [kind] whose id is
     * [recordPrefix] followed by the rest of the name, and whose result is the payload. Throws
     * [LeaseLostException] when [fencingToken] no longer holds the lease. A map collects its
     * children's outcomes with it.
     */
    public fun consumeSignals(
        runId: String,
        fencingToken: Long,
        namePrefix: String,
        recordPrefix: String,
        kind: RecordKind,
        limit: Int,
    ): List<StoredRecord>

    /**
     * Writes the run back as WAITING until [wakeAtMs] (null: until a signal), waiting for
     * [signalNames] (a name ending in `*` stands for every name that starts with what precedes it),
     * and releases its lease. If a signal with one of those names is already stored,
     * the run becomes PENDING and ready now instead.
     */
    public fun unload(runId: String, fencingToken: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome

    /**
     * Marks a RUNNING run as waiting in its worker's memory until [untilMs], for [signalNames]: it
     * keeps its lease, and reads of it ([getRun], [listRuns]) show it WAITING with [RunRecord.readyAt]
     * [untilMs]. The next claim or [unpark] ends the mark. The default records nothing.
     */
    public fun park(runId: String, fencingToken: Long, untilMs: Long, signalNames: Set<String>): WriteOutcome = WriteOutcome.OK

    /** Ends a [park] mark: the run executes again. The default records nothing. */
    public fun unpark(runId: String, fencingToken: Long): WriteOutcome = WriteOutcome.OK

    /**
     * Finishes the run as [status] (COMPLETED, FAILED or CANCELLED) with its output or failure. In the
     * same transaction, with [notifyParent] it sends the run's parent a [ChildOutcome] as signal
     * `child:<parent call>` (a parent WAITING for it becomes PENDING; a finished parent gets nothing),
     * and with [cancelChildren] it cancels the run's attached unfinished children, and theirs.
     */
    public fun finish(
        runId: String,
        fencingToken: Long,
        status: RunStatus,
        output: String?,
        failure: String?,
        notifyParent: Boolean = false,
        cancelChildren: Boolean = false,
    ): WriteOutcome

    /**
     * [finish] for several runs in one transaction (group commit), one outcome per run in order; at
     * most one write per run. Applies nothing when it throws. A write with [FinishWrite.continueAs]
     * also creates the next run of its chain (see there); one with [FinishWrite.records] writes them with
     * the finish. The default finishes them one by one (each after its records, as checkpoints), and
     * cannot continue a run as new.
     */
    public fun finishes(writes: List<FinishWrite>): List<WriteOutcome> {
        if (writes.any { it.continueAs != null }) unsupported("continue-as-new")
        return writes.map { w ->
            if (w.records.any { checkpoint(w.runId, w.fencingToken, it) == WriteOutcome.LEASE_LOST }) return@map WriteOutcome.LEASE_LOST
            finish(w.runId, w.fencingToken, w.status, w.output, w.failure, w.notifyParent, w.cancelChildren)
        }
    }

    /**
     * Gives the lease back: the run is PENDING again. With [retryAfterMs] null (a clean release:
     * graceful shutdown) it is ready now and its claim count starts again. With a delay (the run
     * stopped because its writes failed) it is ready after [retryAfterMs] and its claim count is
     * kept, so a run whose writes keep failing backs off and trips the poison guard.
     */
    public fun release(runId: String, fencingToken: Long, retryAfterMs: Long? = null): WriteOutcome

    /**
     * Renews, in one statement, the leases [workerId] holds on [runIds] (the runs it still executes),
     * and returns the ones it still holds. Leases of runs it no longer executes are left to expire.
     * Also marks the worker seen now (see [registerWorker]); called every heartbeat, with or without runs.
     */
    public fun heartbeat(workerId: String, runIds: Collection<String>, leaseMs: Long): HeartbeatResult

    /** Announces a starting worker: what it serves, and how often it will be seen. The default stores nothing. */
    public fun registerWorker(worker: WorkerRecord) {}

    /** Marks a worker stopped (clean shutdown). The default does nothing. */
    public fun deregisterWorker(workerId: String) {}

    /** The workers announced in the last days, running or not. The default knows none. */
    public fun listWorkers(): List<WorkerRecord> = emptyList()

    /**
     * Stores a signal for [runId]; a WAITING run that waits for [name] becomes PENDING in the same
     * transaction. Throws [dev.stent.UnknownRunException] for an unknown or finished run. [traceContext], the
     * sender's (see [dev.stent.StentTracing]), is kept with the signal and returned by [consumeSignal].
     */
    public fun sendSignal(runId: String, name: String, payload: String, traceContext: String? = null)

    /**
     * Cancels a PENDING or WAITING run at once, or flags a RUNNING one for its worker.
     * Returns the run's status after the call and whether this call cancelled it, or null when there is no such run.
     */
    public fun requestCancel(runId: String): CancelResult?

    /** Counts of runs by workflow and status, the oldest pending run and recent throughput. */
    public fun stats(): StoreStats = throw UnsupportedOperationException("this store does not count runs")

    /**
     * For a virtual clock (the test kit), in one consistent read: how many runs execute, how many runs
     * and schedules are due now, and when the next one comes due. Time may move on only when nothing
     * executes and nothing is due.
     */
    public fun timeline(): Timeline = unsupported("a virtual clock")

    /** The run, or null. */
    public fun getRun(runId: String): RunRecord?

    /**
     * The runs among [runIds] that exist, in any order: one round trip for many awaiters. The default
     * reads them one by one.
     */
    public fun getRuns(runIds: Collection<String>): List<RunRecord> = runIds.mapNotNull(::getRun)

    /** Every record of the run, oldest first. */
    public fun listRecords(runId: String): List<StoredRecord>

    /** Runs matching [query], newest first. */
    public fun listRuns(query: RunQuery): List<RunRecord>

    /**
     * Stores [limits] for queue [QueueLimitsRecord.name], replacing what was stored: every worker's
     * claim enforces them. A record with no limit set removes the queue's limits.
     */
    public fun setQueueLimits(limits: QueueLimitsRecord): Unit = unsupported("queue limits")

    /** Every queue with limits or unfinished runs. */
    public fun listQueues(): List<QueueRecord> = unsupported("queue limits")

    /**
     * Puts a FAILED run back to PENDING, ready now: the record of the step that failed it is deleted
     * (its attempts start again), every other record is kept, the poison count starts again and the
     * retry is counted. Returns the status after the call (unchanged when the run was not FAILED),
     * or null when there is no such run.
     */
    public fun retryRun(runId: String): RunStatus? = unsupported("retry")

    /** Marks a FAILED run handled (it leaves the dead letters). Returns the status, or null when there is no such run. */
    public fun discardRun(runId: String): RunStatus? = unsupported("discard")

    /**
     * Deletes a finished run with its records and signals. Returns its status before (it is left as it
     * is when it is not finished), or null when there is no such run.
     */
    public fun deleteRun(runId: String): RunStatus? = unsupported("delete")

    /** Deletes up to [limit] runs that finished before [beforeMs], with their records and signals; returns how many. */
    public fun deleteFinishedRuns(beforeMs: Long, limit: Int): Int = unsupported("retention")

    /** The cached result under [key] if it has not expired, or null. */
    public fun getCached(key: String): String? = unsupported("the step cache")

    /**
     * Caches [record]'s result under [key] for [ttlMs] unless an unexpired value is stored already,
     * and checkpoints [record] with whichever value is stored, in one transaction. Returns the record
     * written, or null when [fencingToken] no longer holds the lease (nothing is written).
     */
    public fun checkpointCached(runId: String, fencingToken: Long, record: StoredRecord, key: String, ttlMs: Long): StoredRecord? =
        unsupported("the step cache")

    /** Deletes up to [limit] expired cache entries; returns how many. */
    public fun deleteExpiredCache(limit: Int): Int = unsupported("the step cache")

    /**
     * Creates or replaces schedule [ScheduleRecord.name]. A replaced schedule keeps its last tick, so
     * no tick it fired fires again.
     */
    public fun upsertSchedule(schedule: ScheduleRecord): Unit = unsupported("schedules")

    /** Every schedule, by name. */
    public fun listSchedules(): List<ScheduleRecord> = unsupported("schedules")

    /** Pauses or resumes schedule [name]; a resumed one fires next at [nextFireAt]. Returns false when there is no such schedule. */
    public fun setSchedulePaused(name: String, paused: Boolean, nextFireAt: Long?): Boolean = unsupported("schedules")

    /** Deletes schedule [name] (its runs stay); returns false when there was none. */
    public fun deleteSchedule(name: String): Boolean = unsupported("schedules")

    /**
     * Fires up to [limit] due schedules that no other worker is firing, in one transaction: for each,
     * [plan] (given the schedule and the database clock) says which ticks to start runs for and when
     * it is due next; [run] makes the run of a tick (its id names the schedule and the tick, so a tick
     * never starts two runs). Returns how many runs were created and when a schedule is due next.
     */
    public fun fireSchedules(limit: Int, plan: (ScheduleRecord, Long) -> SchedulePlan, run: (ScheduleRecord, Long) -> NewRun): ScheduleFiring =
        unsupported("schedules")

    /**
     * Starts delivering wake-ups written by other processes (PostgreSQL `LISTEN/NOTIFY`) to
     * [sink] until the returned handle is closed. Stores without such a channel return a no-op;
     * the engine then relies on in-process wake-ups and polling.
     */
    public fun startWakeUps(sink: WakeUpSink): AutoCloseable = AutoCloseable {}

    /** True when [startWakeUps] delivers other processes' wake-ups, so waiters can poll rarely. */
    public val deliversWakeUps: Boolean get() = false
}

private fun unsupported(what: String): Nothing =
    throw UnsupportedOperationException("this store does not support $what; use the SQLite or PostgreSQL store")

/** Receives wake-ups; every one is a hint to re-read the database, never a fact to act on. */
public interface WakeUpSink {
    /** New claimable work may exist (a started run, a signal, a released lease, a due timer). */
    public fun work()

    /** Run [runId] finished. */
    public fun finished(runId: String)

    /** A signal was stored for run [runId]. */
    public fun signal(runId: String)

    /** A client asked to cancel run [runId]. */
    public fun cancel(runId: String)

    /** The channel was down and is back: wake-ups may have been lost, so every waiter should look again. */
    public fun reconnected()
}

/** Thrown by a store when a fenced write finds that the lease has passed to another worker. */
public class LeaseLostException(public val runId: String) :
    RuntimeException("run '$runId': the lease passed to another worker; this worker stops the run without writing")
