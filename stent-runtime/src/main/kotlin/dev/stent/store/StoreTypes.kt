package dev.stent.store

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus

/** One record of a run's history, keyed by `(runId, stepId)`. Times are epoch milliseconds, database clock. */
public class StoredRecord(
    public val stepId: String,
    public val kind: RecordKind,
    public val status: RecordStatus,
    /** The encoded result (COMPLETED) or signal payload. */
    public val result: String? = null,
    /** The JSON-encoded [dev.stent.Failure] (FAILED, RETRYING). */
    public val failure: String? = null,
    /** Attempts made so far (steps). */
    public val attempts: Int = 0,
    /** When the timer, deadline or next attempt is due. */
    public val wakeAt: Long? = null,
    /** When this record was last written. */
    public val updatedAt: Long = 0,
    /** For a signal just consumed: the trace context its sender stored with it (not part of the record), or null. */
    public val traceContext: String? = null,
    /** When this record was first written (0 when the store does not say). */
    public val createdAt: Long = 0,
) {
    override fun toString(): String = "StoredRecord($stepId, $kind, $status, attempts=$attempts, wakeAt=$wakeAt)"
}

/** A run as a client creates it. */
public class NewRun(
    public val id: String,
    public val workflowName: String,
    public val input: String,
    public val queue: String,
    public val priority: Int,
    /** Milliseconds after creation (database clock) before the run may be claimed; at most [dev.stent.TimeMath.MAX_DELAY_MS]. */
    public val delayMs: Long,
    /** An absolute deadline (epoch milliseconds), or null. At most one of this and [timeoutMs] is set. */
    public val deadlineAtMs: Long? = null,
    /** A deadline relative to creation (database clock), or null. */
    public val timeoutMs: Long? = null,
    /** The run that started this one as a child, or null. */
    public val parentId: String? = null,
    /** The call in the parent that started it: the parent waits for signal `child:<parentCall>`. */
    public val parentCall: String? = null,
    /** A detached child is not cancelled with its parent. */
    public val detached: Boolean = false,
    /** The run's partition key within its queue, for per-key concurrency limits; null for none. */
    public val partitionKey: String? = null,
    /** The starter's trace context (see [dev.stent.StentTracing]), stored with the run; null for none. */
    public val traceContext: String? = null,
    /**
     * Create the run already claimed by this worker (a worker of the starting process with a free slot), so it
     * starts without a claim round trip; null for a PENDING run any worker claims. A store inserts the run PENDING
     * instead when its queue has limits (limits live in the claim) and then leaves [CreateRunResult.claimed] null.
     */
    public val claimFor: DirectClaim? = null,
)

/** The worker a run is created claimed by ([NewRun.claimFor]), and the lease it gets. */
public class DirectClaim(public val workerId: String, public val leaseMs: Long)

/** How events are kept: as records `event:<key>#<version>` of kind [RecordKind.EVENT]. */
public object EventRecords {
    public fun prefix(key: String): String = "event:$key"

    /** The version of an event record of [key], or null when [stepId] is not one. */
    public fun version(key: String, stepId: String): Long? = stepId.removePrefix(prefix(key) + "#").takeIf { it != stepId }?.toLongOrNull()
}

/**
 * How a run's waited signal names match a stored signal: exactly, or by prefix for a name ending
 * in a star (a map waits for every `child:<map id>/<index>` at once).
 */
public object SignalNames {
    public fun matches(waited: Collection<String>, name: String): Boolean =
        waited.any { if (it.endsWith('*')) name.startsWith(it.dropLast(1)) else it == name }

    /** Why [name] cannot be a user's signal name (the `child:` prefix and a trailing star are Stent's), or null when it can. */
    public fun checkUserName(name: String): String? = when {
        name.startsWith(ChildOutcome.signalName("")) -> "signal names starting with 'child:' are reserved for child runs' outcomes; pick another name"
        name.endsWith('*') -> "a signal name must not end with '*' (reserved for matching many names); pick another name"
        else -> null
    }
}

/**
 * The payload of the signal `child:<call>` a child's end sends its parent, in the transaction that
 * finishes the child: how it ended, and its encoded output or failure.
 */
public class ChildOutcome(public val status: RunStatus, public val output: String? = null, public val failure: String? = null) {
    /** As JSON: `{"status": …, "output": …, "failure": …}`, the output and failure as encoded strings. */
    public fun encode(): String = kotlinx.serialization.json.buildJsonObject {
        put("status", kotlinx.serialization.json.JsonPrimitive(status.name))
        put("output", kotlinx.serialization.json.JsonPrimitive(output))
        put("failure", kotlinx.serialization.json.JsonPrimitive(failure))
    }.toString()

    public companion object {
        public fun decode(payload: String): ChildOutcome {
            val o = kotlinx.serialization.json.Json.parseToJsonElement(payload) as kotlinx.serialization.json.JsonObject
            fun text(key: String) = (o[key] as? kotlinx.serialization.json.JsonPrimitive)?.takeIf { it.isString }?.content
            return ChildOutcome(RunStatus.valueOf(text("status") ?: "FAILED"), text("output"), text("failure"))
        }

        /** The signal a child's end sends its parent, for the parent's call [parentCall]. */
        public fun signalName(parentCall: String): String = "child:$parentCall"
    }
}

/** One write of [WorkflowStore.checkpoints]: [record] for [runId] if [fencingToken] still holds its lease. */
public class CheckpointWrite(public val runId: String, public val fencingToken: Long, public val record: StoredRecord)

/** One write of [WorkflowStore.finishes]: [runId] finishes as [status] if [fencingToken] still holds its lease. */
public class FinishWrite(
    public val runId: String,
    public val fencingToken: Long,
    public val status: dev.stent.RunStatus,
    public val output: String?,
    public val failure: String?,
    /** The run is a child: send its parent the [ChildOutcome] in the same transaction. */
    public val notifyParent: Boolean = false,
    /** The run started children: cancel its attached unfinished children (and theirs) in the same transaction. */
    public val cancelChildren: Boolean = false,
    /**
     * The run continues as new: in the same transaction, create the next run of the chain (same workflow,
     * queue, priority, partition, parent and trace; the workflow timeout counted again), mark this run
     * `continued_as` it, and move its unconsumed signals to it.
     */
    public val continueAs: ContinueAs? = null,
    /**
     * Checkpoints not written yet (the last step of a body that returned right after it): written in the same
     * transaction as the finish and fenced by it, so a one-step workflow finishes with one write instead of two.
     */
    public val records: List<StoredRecord> = emptyList(),
)

/** The next run of a chain that continues as new: its id, encoded input, and the workflow's timeout (its deadline counts from its start). */
public class ContinueAs(public val runId: String, public val input: String, public val timeoutMs: Long? = null) {
    /** The id the store gave the next run: [runId], or a variant when a run had that id already (set by the store). */
    @Volatile
    public var createdId: String? = null

    public companion object {
        // '~' appears in no id Stent generates (children are `<parent>/<call>`, calls `child:<name>#<n>`)
        private val numbered = Regex("^(.*)~(\\d{1,9})$")

        /**
         * The id after [runId] in its chain: `order` → `order~2` → `order~3`, at most 200 characters.
         * The store takes another when a run has it already.
         */
        public fun nextId(runId: String): String {
            val match = numbered.matchEntire(runId)
            val root = match?.groupValues?.get(1) ?: runId
            val suffix = "~" + ((match?.groupValues?.get(2)?.toInt() ?: 1) + 1)
            return root.take(MAX_RUN_ID - suffix.length) + suffix
        }

        private const val MAX_RUN_ID = 200
    }
}

/** The outcome of [WorkflowStore.createRun]. */
public class CreateRunResult(
    /** False when a run with this id existed already; it is left unchanged. */
    public val created: Boolean,
    /** The workflow of the run with this id (the existing one's when not [created]). */
    public val workflowName: String,
    /** When the run was created claimed ([NewRun.claimFor]): its lease, as a claim would have returned it; else null. */
    public val claimed: DirectlyClaimed? = null,
)

/** What a run created claimed holds: its fencing token, its deadline and when it started (database clock). */
public class DirectlyClaimed(public val fencingToken: Long, public val deadlineAtMs: Long?, public val startedAtMs: Long)

/** What a worker asks [WorkflowStore.claim] for. */
public class ClaimRequest(
    public val workerId: String,
    /** Only runs of these workflow names are claimed. */
    public val workflowNames: Collection<String>,
    /** Only runs in these queues are claimed. */
    public val queues: Collection<String>,
    /** At most this many runs. */
    public val limit: Int,
    public val leaseMs: Long,
)

/** A run a worker has just claimed, with every record of its history. */
public class ClaimedRun(
    public val id: String,
    public val workflowName: String,
    public val input: String,
    /** The fencing token: every write for this run must carry it. */
    public val fencingToken: Long,
    /** Claims since the run last finished, unloaded or was released cleanly (for the poison guard). */
    public val claimCount: Int,
    public val records: List<StoredRecord>,
    /** A client asked to cancel the run before this claim: the worker cancels it without running a step. */
    public val cancelRequested: Boolean = false,
    /** When the run's deadline passes (epoch milliseconds, database clock), or null. */
    public val deadlineAtMs: Long? = null,
    /** The parent run of a child, or null. */
    public val parentId: String? = null,
    /** The run's queue, or null when the store does not say. */
    public val queue: String? = null,
    /** When the run first started (epoch milliseconds, database clock), or null when the store does not say. */
    public val startedAtMs: Long? = null,
    /** The trace context stored with the run when it was started, or null. */
    public val traceContext: String? = null,
)

/**
 * The result of a claim: the runs, the database's clock when it ran, and when the next run of
 * the requested workflows becomes ready (so an idle worker can sleep exactly until a timer is due).
 */
public class ClaimResult(public val runs: List<ClaimedRun>, public val dbNowMs: Long, public val nextReadyAt: Long? = null)

/** A lease the worker still holds, as the heartbeat found it. */
public class HeldLease(public val runId: String, public val fencingToken: Long, public val cancelRequested: Boolean)

/** The result of a heartbeat: the leases still held and the database's clock. */
public class HeartbeatResult(public val leases: List<HeldLease>, public val dbNowMs: Long)

/** The outcome of a fenced write. */
public enum class WriteOutcome {
    /** Written. */
    OK,

    /** The run's fencing token no longer matches: another worker owns it. Nothing was written. */
    LEASE_LOST,
}

/** The outcome of [WorkflowStore.unload]. */
public enum class UnloadOutcome {
    /** The run is WAITING with no lease. */
    WAITING,

    /** A signal it waits for is already stored: the run is PENDING again, ready now. */
    READY,

    /** A client had asked to cancel the run: it is CANCELLED instead. */
    CANCELLED,

    /** The fencing token no longer matches. */
    LEASE_LOST,
}

/** A filter for [WorkflowStore.listRuns]; null fields match everything. */
public class RunQuery(
    public val status: RunStatus? = null,
    public val workflowName: String? = null,
    public val limit: Int = 100,
    public val offset: Int = 0,
    /** Only the children of this run. */
    public val parentId: String? = null,
    /** Only runs of this queue. */
    public val queue: String? = null,
    /** Only FAILED runs that failed for this reason. */
    public val failureKind: dev.stent.FailureKind? = null,
    /** Only dead letters: FAILED runs not discarded. */
    public val deadLetters: Boolean = false,
    /** Only runs created at or after this time (epoch milliseconds), or null. */
    public val createdAfter: Long? = null,
    /** Only runs created before this time (epoch milliseconds), or null. */
    public val createdBefore: Long? = null,
    /** With [createdBefore]: also the runs created exactly then whose id sorts before this one (the page after a run). */
    public val beforeId: String? = null,
)

/** Counts over every run in the store: what `stent stats` and the dashboard show. Times are epoch milliseconds, database clock. */
public class StoreStats(
    /** Runs by workflow and status (a run parked in memory counts as WAITING). */
    public val counts: List<StatusCount>,
    /** When the oldest PENDING run was created, or null when none is pending. */
    public val oldestPendingCreatedAt: Long?,
    /** Runs that finished in the last minute, and in the last hour. */
    public val finishedLastMinute: Long,
    public val finishedLastHour: Long,
    public val dbNowMs: Long,
)

/** See [WorkflowStore.timeline]. Times are epoch milliseconds, database clock. */
public class Timeline(
    /** Runs RUNNING (executing, or waiting in a worker's memory). */
    public val running: Long,
    /** PENDING or WAITING runs, and schedules, due at [dbNowMs] or before. */
    public val dueNow: Long,
    /** When the next PENDING or WAITING run or schedule comes due after [dbNowMs], or null. */
    public val nextDueAt: Long?,
    public val dbNowMs: Long,
)

/** How many runs of [workflowName] are [status]. */
public class StatusCount(public val workflowName: String, public val status: dev.stent.RunStatus, public val count: Long)

/** A run as stored. Times are epoch milliseconds, database clock. */
public class RunRecord(
    public val id: String,
    public val workflowName: String,
    public val status: RunStatus,
    public val input: String,
    public val output: String?,
    /** The JSON-encoded [dev.stent.Failure] of a FAILED run. */
    public val failure: String?,
    public val queue: String,
    public val priority: Int,
    public val createdAt: Long,
    public val startedAt: Long?,
    public val updatedAt: Long,
    public val finishedAt: Long?,
    /** When a PENDING or WAITING run becomes claimable (null: only a signal wakes it). */
    public val readyAt: Long?,
    public val claimCount: Int,
    public val leaseOwner: String?,
    public val leaseExpiresAt: Long?,
    public val cancelRequested: Boolean,
    /** When the run's deadline passes, or null. */
    public val deadlineAt: Long? = null,
    /** The signal names a WAITING run waits for. */
    public val waitSignals: List<String> = emptyList(),
    /** The run that started this one as a child, or null. */
    public val parentId: String? = null,
    /** The partition key given at start, or null. */
    public val partitionKey: String? = null,
    /** Why a FAILED run failed, or null. */
    public val failureKind: dev.stent.FailureKind? = null,
    /** How many times the run was retried after failing. */
    public val retries: Int = 0,
    /** When a FAILED run was discarded (marked handled), or null. */
    public val discardedAt: Long? = null,
    /** The next run of the chain, when this one continued as new (it is COMPLETED without an output). */
    public val continuedAs: String? = null,
)

/** How dead letters are kept: which kind of failure a finished run's encoded failure is. */
public object FailureKinds {
    /** The [dev.stent.FailureKind] of an encoded [dev.stent.Failure] (JSON with a `type`), or null for none. */
    public fun ofEncoded(failure: String?): dev.stent.FailureKind? {
        if (failure == null) return null
        val type = runCatching {
            (kotlinx.serialization.json.Json.parseToJsonElement(failure) as? kotlinx.serialization.json.JsonObject)
                ?.get("type")?.let { (it as? kotlinx.serialization.json.JsonPrimitive)?.content }
        }.getOrNull()
        return dev.stent.FailureKind.ofType(type ?: "")
    }
}

/**
 * A queue's limits as stored: every worker's claim enforces them. Null fields do not limit.
 * [ratePeriodMs] is set exactly when [rateLimit] is.
 */
public class QueueLimitsRecord(
    public val name: String,
    public val concurrency: Int? = null,
    public val concurrencyPerKey: Int? = null,
    public val rateLimit: Int? = null,
    public val ratePeriodMs: Long? = null,
    public val updatedAt: Long = 0,
)

/** A queue as [WorkflowStore.listQueues] reports it: its limits (if any) and its unfinished runs. */
public class QueueRecord(
    public val name: String,
    public val limits: QueueLimitsRecord?,
    public val pending: Long,
    public val running: Long,
    public val waiting: Long,
)

/** A schedule as stored; see [WorkflowStore.fireSchedules]. Times are epoch milliseconds, database clock. */
public class ScheduleRecord(
    public val name: String,
    /** The cron expression (5 fields, or 6 with seconds first). */
    public val cron: String,
    /** The time zone id the expression is read in. */
    public val zone: String,
    public val workflowName: String,
    /** The encoded input of every run. */
    public val input: String,
    public val queue: String,
    public val priority: Int,
    /** Ticks missed while no worker fired them that are still started, newest first; 0 skips them all. */
    public val catchUp: Int,
    public val paused: Boolean,
    /** When the next tick is due; null when the expression has no more. */
    public val nextFireAt: Long?,
    /** The last tick a run was started for, or null. */
    public val lastFireAt: Long? = null,
    public val createdAt: Long = 0,
    public val updatedAt: Long = 0,
    /** The workflow's run timeout, applied to every run a tick starts; null for none. */
    public val timeoutMs: Long? = null,
)

/**
 * What [WorkflowStore.fireSchedules] did: the runs it created ([started], [created] of them), and when the earliest
 * unpaused schedule is due next (null: none).
 */
public class ScheduleFiring(
    public val created: Int,
    public val nextDueAt: Long?,
    public val dbNowMs: Long,
    public val started: List<NewRun> = emptyList(),
)

/** What to do for a due schedule: start runs for [ticks] (oldest first) and fire next at [nextFireAt] (null: never). */
public class SchedulePlan(public val ticks: List<Long>, public val nextFireAt: Long?)

/** A worker as it announces itself in the store, so `describe()` can tell when nobody serves a run. */
public class WorkerRecord(
    public val id: String,
    /** The workflow names it registered. */
    public val workflowNames: List<String>,
    /** The queues it claims from; null for every queue. */
    public val queues: List<String>?,
    /** Its lease duration: it renews [lastSeenAt] at least that often while it runs. */
    public val leaseMs: Long,
    public val startedAt: Long,
    public val lastSeenAt: Long,
    /** When it shut down cleanly; null while it runs (or if it died). */
    public val stoppedAt: Long?,
)

/** What [WorkflowStore.requestCancel] did. */
public class CancelResult(
    /** The run's status after the call. */
    public val status: RunStatus,
    /** True when this call cancelled the run (it was PENDING or WAITING); false when it flagged a RUNNING run or found it finished. */
    public val cancelledNow: Boolean,
    public val workflowName: String,
    /** When the run first started, or null (epoch milliseconds, database clock). */
    public val startedAt: Long?,
    /** The database clock at the cancel. */
    public val dbNowMs: Long,
)
