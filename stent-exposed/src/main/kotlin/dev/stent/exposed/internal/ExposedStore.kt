package dev.stent.exposed.internal

import dev.stent.RecordKind
import dev.stent.RunStatus
import dev.stent.store.CheckpointWrite
import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.CreateRunResult
import dev.stent.store.FinishWrite
import dev.stent.store.HeartbeatResult
import dev.stent.store.NewRun
import dev.stent.store.QueueLimitsRecord
import dev.stent.store.QueueRecord
import dev.stent.store.RunQuery
import dev.stent.store.RunRecord
import dev.stent.store.ScheduleFiring
import dev.stent.store.SchedulePlan
import dev.stent.store.ScheduleRecord
import dev.stent.store.StoredRecord
import dev.stent.store.UnloadOutcome
import dev.stent.store.WakeUpSink
import dev.stent.store.WorkerRecord
import dev.stent.store.WorkflowStore
import dev.stent.store.WriteOutcome
import org.jetbrains.exposed.v1.jdbc.Database
import java.sql.Connection

/**
 * The [WorkflowStore] on Exposed and JDBC, for SQLite and PostgreSQL: a facade over one file per
 * concern ([StoreContext] says which). Each method is one transaction; hot-path statements are SQL
 * written out per dialect so each is one round trip.
 */
internal class ExposedStore(
    dataSource: javax.sql.DataSource,
    db: Database,
    dialect: SqlDialect,
    override val maxConnections: Int,
    /** The channel wake-ups are sent on (PostgreSQL), specific to the schema. */
    private val channel: String,
    /** Opens the dedicated connection that LISTENs for wake-ups (PostgreSQL). */
    private val listenConnection: (() -> Connection)?,
    private val onClose: () -> Unit,
) : WorkflowStore {
    private val ctx = StoreContext(dataSource, db, dialect, channel, sendsWakeUps = listenConnection != null)

    override val deliversWakeUps: Boolean get() = listenConnection != null

    override fun startWakeUps(sink: WakeUpSink): AutoCloseable =
        listenConnection?.let { PgWakeUps(it, channel, sink) } ?: run {
            ctx.localSink = sink
            AutoCloseable { ctx.localSink = null }
        }

    override fun dbNowMs(): Long = with(ctx) { tx { nowMs() } }

    override fun createRun(run: NewRun): CreateRunResult = ctx.createRun(run)

    /** See [StoreContext.explainClaim]. */
    fun explainClaim(request: ClaimRequest): String = ctx.explainClaim(request)
    override fun createRuns(runs: List<NewRun>): List<CreateRunResult> = ctx.createRuns(runs)
    override fun claim(request: ClaimRequest): ClaimResult = ctx.claim(request)
    override fun release(runId: String, fencingToken: Long, retryAfterMs: Long?): WriteOutcome = ctx.release(runId, fencingToken, retryAfterMs)
    override fun heartbeat(workerId: String, runIds: Collection<String>, leaseMs: Long): HeartbeatResult = ctx.heartbeat(workerId, runIds, leaseMs)
    override fun checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome = ctx.checkpoint(runId, fencingToken, record)
    override fun checkpoints(writes: List<CheckpointWrite>): List<WriteOutcome> = ctx.checkpoints(writes)
    override fun consumeSignal(runId: String, fencingToken: Long, name: String, stepId: String): StoredRecord? =
        ctx.consumeSignal(runId, fencingToken, name, stepId)
    override fun listRecords(runId: String): List<StoredRecord> = ctx.listRecords(runId)
    override fun listEvents(runId: String, key: String): List<StoredRecord> = ctx.listEvents(runId, key)
    override fun consumeSignals(
        runId: String,
        fencingToken: Long,
        namePrefix: String,
        recordPrefix: String,
        kind: RecordKind,
        limit: Int,
    ): List<StoredRecord> = ctx.consumeSignals(runId, fencingToken, namePrefix, recordPrefix, kind, limit)
    override fun unload(runId: String, fencingToken: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome =
        ctx.unload(runId, fencingToken, wakeAtMs, signalNames)
    override fun finish(
        runId: String,
        fencingToken: Long,
        status: RunStatus,
        output: String?,
        failure: String?,
        notifyParent: Boolean,
        cancelChildren: Boolean,
    ): WriteOutcome = ctx.finish(runId, fencingToken, status, output, failure, notifyParent, cancelChildren)
    override fun finishes(writes: List<FinishWrite>): List<WriteOutcome> = ctx.finishes(writes)
    override fun park(runId: String, fencingToken: Long, untilMs: Long, signalNames: Set<String>): WriteOutcome =
        ctx.park(runId, fencingToken, untilMs, signalNames)
    override fun unpark(runId: String, fencingToken: Long): WriteOutcome = ctx.unpark(runId, fencingToken)
    override fun sendSignal(runId: String, name: String, payload: String, traceContext: String?) = ctx.sendSignal(runId, name, payload, traceContext)
    override fun requestCancel(runId: String): dev.stent.store.CancelResult? = ctx.requestCancel(runId)
    override fun registerWorker(worker: WorkerRecord) = ctx.registerWorker(worker)
    override fun deregisterWorker(workerId: String) = ctx.deregisterWorker(workerId)
    override fun listWorkers(): List<WorkerRecord> = ctx.listWorkers()
    override fun getRun(runId: String): RunRecord? = ctx.getRun(runId)

    override fun stats(): dev.stent.store.StoreStats = ctx.stats()
    override fun timeline(): dev.stent.store.Timeline = ctx.timeline()
    override fun getRuns(runIds: Collection<String>): List<RunRecord> = ctx.getRuns(runIds)
    override fun listRuns(query: RunQuery): List<RunRecord> = ctx.listRuns(query)

    override fun setQueueLimits(limits: QueueLimitsRecord) = ctx.setQueueLimits(limits)
    override fun listQueues(): List<QueueRecord> = ctx.listQueues()
    override fun retryRun(runId: String): RunStatus? = ctx.retryRun(runId)
    override fun discardRun(runId: String): RunStatus? = ctx.discardRun(runId)
    override fun deleteRun(runId: String): RunStatus? = ctx.deleteRun(runId)
    override fun deleteFinishedRuns(beforeMs: Long, limit: Int): Int = ctx.deleteFinishedRuns(beforeMs, limit)
    override fun getCached(key: String): String? = ctx.getCached(key)
    override fun checkpointCached(runId: String, fencingToken: Long, record: StoredRecord, key: String, ttlMs: Long): StoredRecord? =
        ctx.checkpointCached(runId, fencingToken, record, key, ttlMs)
    override fun deleteExpiredCache(limit: Int): Int = ctx.deleteExpiredCache(limit)
    override fun upsertSchedule(schedule: ScheduleRecord) = ctx.upsertSchedule(schedule)
    override fun listSchedules(): List<ScheduleRecord> = ctx.listSchedules()
    override fun setSchedulePaused(name: String, paused: Boolean, nextFireAt: Long?): Boolean = ctx.setSchedulePaused(name, paused, nextFireAt)
    override fun deleteSchedule(name: String): Boolean = ctx.deleteSchedule(name)
    override fun fireSchedules(limit: Int, plan: (ScheduleRecord, Long) -> SchedulePlan, run: (ScheduleRecord, Long) -> NewRun): ScheduleFiring =
        ctx.fireSchedules(limit, plan, run)

    override fun close() {
        ctx.close()
        onClose()
    }
}
