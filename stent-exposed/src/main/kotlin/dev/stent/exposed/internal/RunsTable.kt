package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.core.Table

/** `stent_runs`: one row per run. Times are epoch milliseconds on the database clock. */
internal object RunsTable : Table("stent_runs") {
    val id = varchar("id", 200)
    val workflowName = varchar("workflow_name", 200)
    val status = varchar("status", 16)
    val input = text("input")
    val output = text("output").nullable()
    val failure = text("failure").nullable()
    val queue = varchar("queue", 200)
    val priority = integer("priority")

    /** When a PENDING or WAITING run becomes claimable; null while RUNNING or when only a signal wakes it. */
    val readyAt = long("ready_at").nullable()

    /** JSON array of the signal names an unloaded run waits for. */
    val waitSignals = text("wait_signals").nullable()
    val leaseOwner = varchar("lease_owner", 200).nullable()

    /** The fencing token: incremented by every claim, checked by every write. */
    val fencingToken = long("fencing_token")
    val leaseExpiresAt = long("lease_expires_at").nullable()

    /** When the run is cancelled for passing its deadline; null for none (migration 3). */
    val deadlineAt = long("deadline_at").nullable()
    val claimCount = integer("claim_count")
    val cancelRequested = bool("cancel_requested")
    val createdAt = long("created_at")
    val startedAt = long("started_at").nullable()
    val updatedAt = long("updated_at")
    val finishedAt = long("finished_at").nullable()

    /** When a RUNNING run began to wait in its worker's memory (it reads as WAITING); null while it executes (migration 6). */
    val parkedAt = long("parked_at").nullable()

    /** Until when a parked run waits (migration 6). */
    val parkedUntil = long("parked_until").nullable()

    /** The run that started this one as a child (migration 7). */
    val parentId = varchar("parent_id", 200).nullable()

    /** The parent's call that started it: its end is signalled to the parent as `child:<parent_call>`. */
    val parentCall = varchar("parent_call", 400).nullable()

    /** A detached child is not cancelled with its parent. */
    val detached = bool("detached")

    /** The partition key given at start, for per-key queue limits (migration 9). */
    val partitionKey = varchar("partition_key", 200).nullable()

    /** Why a FAILED run failed ([dev.stent.FailureKind]). */
    val failureKind = varchar("failure_kind", 32).nullable()

    /** How many times the run was retried after failing. */
    val retries = integer("retries")

    /** When a FAILED run was discarded (marked handled). */
    val discardedAt = long("discarded_at").nullable()

    /** The next run of the chain, when this one continued as new. */
    val continuedAs = varchar("continued_as", 200).nullable()

    /** The first run of the chain, on every run of a chain that continued as new (null for a run that never did). */
    val chainRoot = varchar("chain_root", 200).nullable()

    override val primaryKey = PrimaryKey(id)

    // Migration 1 created these; migration 2 replaced the first three with partial indexes over unfinished runs.
    init {
        // the claim: claimable runs by readiness
        index("stent_runs_ready", false, status, readyAt)
        // the claim of expired leases
        index("stent_runs_lease", false, status, leaseExpiresAt)
        // the heartbeat: every lease of one worker
        index("stent_runs_owner", false, leaseOwner)
        // listing by time
        index("stent_runs_created", false, createdAt)
    }
}
