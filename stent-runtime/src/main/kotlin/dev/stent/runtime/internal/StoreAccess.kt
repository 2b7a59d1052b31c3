package dev.stent.runtime.internal

import dev.stent.InternalStentApi
import dev.stent.RunStatus
import dev.stent.StentException
import dev.stent.StentStoreException
import dev.stent.store.CheckpointWrite
import dev.stent.store.CreateRunResult
import dev.stent.store.FinishWrite
import dev.stent.store.LeaseLostException
import dev.stent.store.NewRun
import dev.stent.store.StoredRecord
import dev.stent.store.WorkflowStore
import dev.stent.store.WriteOutcome
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * Runs blocking store calls on a dispatcher bounded by the store's connection pool, never on the
 * caller's thread, and turns unexpected database errors into [StentStoreException]s that name the
 * operation.
 */
internal class StoreAccess(
    val store: WorkflowStore,
    storeTimeoutMs: Long = 30_000,
    /** Bounded to the pool size, so coroutines queue here instead of blocking on the pool (a test may pass its own). */
    val dispatcher: CoroutineDispatcher = Dispatchers.IO.limitedParallelism(store.maxConnections.coerceAtLeast(1)),
) {

    // a group write that fails is retried item by item: wait out both before giving up
    private val groupWaitMs = storeTimeoutMs * 2
    private val starts = GroupCommit<NewRun, CreateRunResult>(MAX_GROUP, groupWaitMs) { store.createRuns(it) }
    private val checkpoints = GroupCommit<CheckpointWrite, WriteOutcome>(MAX_GROUP, groupWaitMs) { store.checkpoints(it) }
    private val finishes = GroupCommit<FinishWrite, WriteOutcome>(MAX_GROUP, groupWaitMs) { store.finishes(it) }

    /** [WorkflowStore.createRun], group-committed with concurrent starts of this JVM. Blocking: call it in [call] or [inline]. */
    fun createRun(run: NewRun): CreateRunResult = starts.submit(run)

    /** [WorkflowStore.checkpoint], group-committed with concurrent checkpoints of this JVM. Blocking. */
    fun checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome =
        checkpoints.submit(CheckpointWrite(runId, fencingToken, record))

    /** [WorkflowStore.finish], group-committed with concurrent finishes of this JVM. Blocking. */
    fun finish(write: FinishWrite): WriteOutcome = finishes.submit(write)

    /**
     * Runs [block], a write that goes through a group commit ([createRun]), off the caller's thread but not on the
     * bounded dispatcher: concurrent callers then wait together in the group's queue (only its leader takes a
     * connection) and share one statement and one commit. Queued on a dispatcher of one connection (SQLite), they
     * would reach the group one at a time and never share. [what] names the operation in errors.
     */
    suspend fun <T> grouped(what: String, block: StoreAccess.() -> T): T = withContext(groupedDispatcher) { inline(what) { this@StoreAccess.block() } }

    /** A view of the IO pool of its own: callers waiting in a group never hold up other users of `Dispatchers.IO` (heartbeats). */
    private val groupedDispatcher = Dispatchers.IO.limitedParallelism(MAX_GROUP * 2)

    /** Runs [block] against the store on the bounded dispatcher; [what] names the operation in errors. */
    suspend fun <T> call(what: String, block: WorkflowStore.() -> T): T = withContext(dispatcher) { inline(what, block) }

    /**
     * Runs [block] on the calling thread, which must be one made for blocking (a run's serial view of
     * the IO pool). The pool's size still bounds how many statements run at once. Saves two thread
     * hops per step, which cost more than the commit itself on a small machine.
     */
    fun <T> inline(what: String, block: WorkflowStore.() -> T): T = try {
        store.block()
    } catch (e: StentException) {
        throw e
    } catch (e: LeaseLostException) {
        throw e
    } catch (e: Exception) {
        throw StentStoreException("database error while $what: ${e.message ?: e.javaClass.name}", e)
    }

    private companion object {
        /** Rows per group statement: well within PostgreSQL's and SQLite's limits on bound parameters. */
        const val MAX_GROUP = 128
    }
}
