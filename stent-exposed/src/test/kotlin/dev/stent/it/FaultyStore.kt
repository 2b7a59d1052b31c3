package dev.stent.it

import dev.stent.RunStatus
import dev.stent.store.CheckpointWrite
import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.FinishWrite
import dev.stent.store.HeartbeatResult
import dev.stent.store.StoredRecord
import dev.stent.store.UnloadOutcome
import dev.stent.store.WorkflowStore
import dev.stent.store.WriteOutcome
import java.sql.SQLException
import java.util.concurrent.atomic.AtomicInteger

/**
 * A real store with faults injected where recovery lives: each hook runs before (or around) the
 * real call and may throw, block or count. Wraps the store of a real SQLite or PostgreSQL database,
 * so everything not faulted is the real thing.
 */
class FaultyStore(private val real: WorkflowStore) : WorkflowStore by real {
    /** Runs before each checkpoint (single or grouped) with the write; throw to fail it. */
    @Volatile var beforeCheckpoint: (CheckpointWrite) -> Unit = {}

    /** Runs after each checkpoint (single or grouped) with the write and what the database answered. */
    @Volatile var afterCheckpoint: (CheckpointWrite, WriteOutcome) -> Unit = { _, _ -> }

    /** Wraps each claim: gets the real call, returns its result (run it, delay it, throw after it). */
    @Volatile var aroundClaim: (() -> ClaimResult) -> ClaimResult = { it() }

    /** Runs before each heartbeat; throw to fail it. */
    @Volatile var beforeHeartbeat: () -> Unit = {}

    /** Runs before each finish (single or grouped) with run id and status; throw to fail it. */
    @Volatile var beforeFinish: (String, RunStatus) -> Unit = { _, _ -> }

    /** Runs before each unload with the run id; throw to fail it. */
    @Volatile var beforeUnload: (String) -> Unit = {}

    /** Checkpoints written, alone, grouped or folded into a finish. */
    val checkpointCalls = AtomicInteger()

    /** Of [checkpointCalls], those folded into a finish ([FinishWrite.records]). */
    val foldedRecords = AtomicInteger()
    val claims = AtomicInteger()

    /** Runs the claims returned. */
    val claimedRuns = AtomicInteger()

    override fun checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome {
        checkpointCalls.incrementAndGet()
        val write = CheckpointWrite(runId, fencingToken, record)
        beforeCheckpoint(write)
        return real.checkpoint(runId, fencingToken, record).also { afterCheckpoint(write, it) }
    }

    override fun checkpoints(writes: List<CheckpointWrite>): List<WriteOutcome> {
        checkpointCalls.addAndGet(writes.size)
        writes.forEach(beforeCheckpoint)
        return real.checkpoints(writes).also { outcomes -> writes.zip(outcomes).forEach { (w, o) -> afterCheckpoint(w, o) } }
    }

    override fun claim(request: ClaimRequest): ClaimResult {
        claims.incrementAndGet()
        return aroundClaim { real.claim(request) }.also { claimedRuns.addAndGet(it.runs.size) }
    }

    override fun heartbeat(workerId: String, runIds: Collection<String>, leaseMs: Long): HeartbeatResult {
        beforeHeartbeat()
        return real.heartbeat(workerId, runIds, leaseMs)
    }

    override fun finish(
        runId: String,
        fencingToken: Long,
        status: RunStatus,
        output: String?,
        failure: String?,
        notifyParent: Boolean,
        cancelChildren: Boolean,
    ): WriteOutcome {
        beforeFinish(runId, status)
        return real.finish(runId, fencingToken, status, output, failure, notifyParent, cancelChildren)
    }

    override fun finishes(writes: List<FinishWrite>): List<WriteOutcome> {
        writes.forEach { beforeFinish(it.runId, it.status) }
        // a record folded into a finish is a checkpoint too: the checkpoint hooks see it
        for (w in writes) {
            for (record in w.records) {
                checkpointCalls.incrementAndGet()
                foldedRecords.incrementAndGet()
                beforeCheckpoint(CheckpointWrite(w.runId, w.fencingToken, record))
            }
        }
        return real.finishes(writes)
    }

    override fun unload(runId: String, fencingToken: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome {
        beforeUnload(runId)
        return real.unload(runId, fencingToken, wakeAtMs, signalNames)
    }

    companion object {
        /** What a database error looks like to the engine. */
        fun dbError(what: String) = SQLException("injected fault: $what", "08006")
    }
}
