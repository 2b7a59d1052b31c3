package dev.stent.runtime.internal

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.UnknownRunException
import dev.stent.store.ChildOutcome
import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.ClaimedRun
import dev.stent.store.CreateRunResult
import dev.stent.store.HeartbeatResult
import dev.stent.store.HeldLease
import dev.stent.store.LeaseLostException
import dev.stent.store.NewRun
import dev.stent.store.RunQuery
import dev.stent.store.RunRecord
import dev.stent.store.SignalNames
import dev.stent.store.StoredRecord
import dev.stent.store.UnloadOutcome
import dev.stent.store.WorkflowStore
import dev.stent.store.WriteOutcome

/**
 * A fake of the store SPI in memory, for fast engine specs in virtual time: the same rules as the
 * SQL stores (fencing tokens, final records never overwritten, signals consumed once, unload
 * re-checking for signals and cancels), on a clock the test drives. The real-database suites in
 * stent-exposed stay the source of truth; this fake only has to agree with them.
 */
internal class InMemoryStore(private val clock: () -> Long) : WorkflowStore {
    private class Run(val id: String, val workflowName: String, val input: String, val queue: String, val priority: Int, val createdAt: Long) {
        var status = RunStatus.PENDING
        var output: String? = null
        var failure: String? = null
        var readyAt: Long? = null
        var waitSignals: Set<String> = emptySet()
        var owner: String? = null
        var fencingToken = 0L
        var leaseExpiresAt: Long? = null
        var claimCount = 0
        var cancelRequested = false
        var startedAt: Long? = null
        var updatedAt = createdAt
        var finishedAt: Long? = null
        var deadlineAt: Long? = null
        var parentId: String? = null
        var parentCall: String? = null
        var detached = false
    }

    private class Signal(val seq: Long, val runId: String, val name: String, val payload: String, val traceContext: String? = null) {
        var consumedBy: String? = null
    }

    // guarded by this
    private val runs = LinkedHashMap<String, Run>()
    private val steps = HashMap<String, LinkedHashMap<String, StoredRecord>>()
    private val signals = ArrayList<Signal>()
    private var seq = 0L

    override val maxConnections: Int get() = 1

    override fun dbNowMs(): Long = clock()

    @Synchronized
    override fun createRun(run: NewRun): CreateRunResult {
        runs[run.id]?.let { return CreateRunResult(false, it.workflowName) }
        val now = clock()
        runs[run.id] = Run(run.id, run.workflowName, run.input, run.queue, run.priority, now).apply {
            deadlineAt = run.deadlineAtMs ?: run.timeoutMs?.let { now + it }
            parentId = run.parentId
            parentCall = run.parentCall
            detached = run.detached
            readyAt = listOfNotNull(now + run.delayMs, deadlineAt).min()
        }
        return CreateRunResult(true, run.workflowName)
    }

    @Synchronized
    override fun claim(request: ClaimRequest): ClaimResult {
        val now = clock()
        fun eligible(r: Run) = r.workflowName in request.workflowNames && (request.queues.isEmpty() || r.queue in request.queues)
        val expired = runs.values.filter { eligible(it) && it.status == RunStatus.RUNNING && it.leaseExpiresAt!! < now }
        val ready = runs.values.filter { eligible(it) && it.status in setOf(RunStatus.PENDING, RunStatus.WAITING) && (it.readyAt ?: Long.MAX_VALUE) <= now }
            .sortedWith(compareByDescending<Run> { it.priority }.thenBy { it.readyAt })
        val taken = (expired + ready).take(request.limit)
        for (r in taken) {
            r.status = RunStatus.RUNNING
            r.owner = request.workerId
            r.fencingToken++
            r.leaseExpiresAt = now + request.leaseMs
            r.claimCount++
            r.startedAt = r.startedAt ?: now
            r.readyAt = null
            r.waitSignals = emptySet()
            r.updatedAt = now
        }
        val claimed = taken.map {
            val records = steps[it.id]?.values?.toList().orEmpty()
            ClaimedRun(it.id, it.workflowName, it.input, it.fencingToken, it.claimCount, records, it.cancelRequested, it.deadlineAt, it.parentId)
        }
        val next = if (claimed.isNotEmpty()) null else runs.values.filter(::eligible)
            .mapNotNull { if (it.status == RunStatus.RUNNING) it.leaseExpiresAt else if (it.status.isFinished) null else it.readyAt }.minOrNull()
        return ClaimResult(claimed, now, next)
    }

    private fun holds(runId: String, fencingToken: Long): Run? = runs[runId]?.takeIf { it.status == RunStatus.RUNNING && it.fencingToken == fencingToken }

    @Synchronized
    override fun checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome {
        holds(runId, fencingToken) ?: return WriteOutcome.LEASE_LOST
        val records = steps.getOrPut(runId) { LinkedHashMap() }
        if (records[record.stepId]?.status?.isFinal != true) {
            records[record.stepId] = StoredRecord(
                record.stepId, record.kind, record.status, record.result, record.failure, record.attempts, record.wakeAt, clock(),
            )
        }
        return WriteOutcome.OK
    }

    @Synchronized
    override fun consumeSignal(runId: String, fencingToken: Long, name: String, stepId: String): StoredRecord? {
        holds(runId, fencingToken) ?: throw LeaseLostException(runId)
        val signal = signals.firstOrNull { it.runId == runId && it.name == name && it.consumedBy == null } ?: return null
        signal.consumedBy = stepId
        // as the real stores' upsert: a record that exists keeps its kind (a child's await completes its CHILD record)
        val kind = steps[runId]?.get(stepId)?.kind ?: RecordKind.SIGNAL
        val record = StoredRecord(stepId, kind, RecordStatus.COMPLETED, result = signal.payload, updatedAt = clock())
        steps.getOrPut(runId) { LinkedHashMap() }[stepId] = record
        return StoredRecord(stepId, kind, RecordStatus.COMPLETED, result = signal.payload, updatedAt = record.updatedAt, traceContext = signal.traceContext)
    }

    @Synchronized
    override fun consumeSignals(
        runId: String,
        fencingToken: Long,
        namePrefix: String,
        recordPrefix: String,
        kind: RecordKind,
        limit: Int,
    ): List<StoredRecord> {
        holds(runId, fencingToken) ?: throw LeaseLostException(runId)
        return signals.filter { it.runId == runId && it.consumedBy == null && it.name.startsWith(namePrefix) }.take(limit).map { signal ->
            val id = recordPrefix + signal.name.removePrefix(namePrefix)
            signal.consumedBy = id
            StoredRecord(id, kind, RecordStatus.COMPLETED, result = signal.payload, updatedAt = clock()).also {
                steps.getOrPut(runId) { LinkedHashMap() }[id] = it
            }
        }
    }

    @Synchronized
    override fun unload(runId: String, fencingToken: Long, wakeAtMs: Long?, signalNames: Set<String>): UnloadOutcome {
        val run = holds(runId, fencingToken) ?: return UnloadOutcome.LEASE_LOST
        if (run.cancelRequested) {
            end(run, RunStatus.CANCELLED, null, null)
            return UnloadOutcome.CANCELLED
        }
        run.owner = null
        run.leaseExpiresAt = null
        run.claimCount = 0
        run.updatedAt = clock()
        return if (signals.any { it.runId == runId && it.consumedBy == null && SignalNames.matches(signalNames, it.name) }) {
            run.status = RunStatus.PENDING
            run.readyAt = clock()
            UnloadOutcome.READY
        } else {
            run.status = RunStatus.WAITING
            run.readyAt = wakeAtMs
            run.waitSignals = signalNames
            UnloadOutcome.WAITING
        }
    }

    /** A child's end tells its parent; a parent's end cancels its attached children (and theirs). */
    private fun endFamily(run: Run) {
        val parent = run.parentId?.let { runs[it] }
        if (parent != null && !parent.status.isFinished) {
            val name = ChildOutcome.signalName(run.parentCall!!)
            signals += Signal(++seq, parent.id, name, ChildOutcome(run.status, run.output, run.failure).encode())
            if (parent.status == RunStatus.WAITING && SignalNames.matches(parent.waitSignals, name)) {
                parent.status = RunStatus.PENDING
                parent.readyAt = clock()
            }
        }
        for (child in runs.values.filter { it.parentId == run.id && !it.detached && !it.status.isFinished }) {
            if (child.status == RunStatus.RUNNING) child.cancelRequested = true else end(child, RunStatus.CANCELLED, null, null)
        }
    }

    private fun end(run: Run, status: RunStatus, output: String?, failure: String?) {
        run.status = status
        run.output = output
        run.failure = failure
        run.finishedAt = clock()
        run.updatedAt = clock()
        run.owner = null
        run.leaseExpiresAt = null
        run.readyAt = null
        run.waitSignals = emptySet()
        endFamily(run)
    }

    @Synchronized
    override fun finish(
        runId: String,
        fencingToken: Long,
        status: RunStatus,
        output: String?,
        failure: String?,
        notifyParent: Boolean,
        cancelChildren: Boolean,
    ): WriteOutcome {
        require(status.isFinished) { "finish needs a final status, not $status" }
        val run = holds(runId, fencingToken) ?: return WriteOutcome.LEASE_LOST
        end(run, status, output, failure)
        return WriteOutcome.OK
    }

    @Synchronized
    override fun release(runId: String, fencingToken: Long, retryAfterMs: Long?): WriteOutcome {
        val run = holds(runId, fencingToken) ?: return WriteOutcome.LEASE_LOST
        run.status = RunStatus.PENDING
        run.owner = null
        run.leaseExpiresAt = null
        run.readyAt = clock() + (retryAfterMs ?: 0)
        if (retryAfterMs == null) run.claimCount = 0
        run.updatedAt = clock()
        return WriteOutcome.OK
    }

    @Synchronized
    override fun heartbeat(workerId: String, runIds: Collection<String>, leaseMs: Long): HeartbeatResult {
        val held = runIds.mapNotNull { runs[it] }.filter { it.owner == workerId && it.status == RunStatus.RUNNING }
        held.forEach { it.leaseExpiresAt = clock() + leaseMs }
        return HeartbeatResult(held.map { HeldLease(it.id, it.fencingToken, it.cancelRequested) }, clock())
    }

    @Synchronized
    override fun sendSignal(runId: String, name: String, payload: String, traceContext: String?) {
        val run = runs[runId] ?: throw UnknownRunException(runId, "cannot send signal '$name': the run was never started")
        if (run.status.isFinished) throw UnknownRunException(runId, "cannot send signal '$name': the run has finished (${run.status})")
        signals += Signal(++seq, runId, name, payload, traceContext)
        if (run.status == RunStatus.WAITING && SignalNames.matches(run.waitSignals, name)) {
            run.status = RunStatus.PENDING
            run.readyAt = clock()
        }
    }

    @Synchronized
    override fun requestCancel(runId: String): dev.stent.store.CancelResult? {
        val run = runs[runId] ?: return null
        val before = run.status
        val after = when (before) {
            RunStatus.PENDING, RunStatus.WAITING -> RunStatus.CANCELLED.also { end(run, it, null, null) }
            RunStatus.RUNNING -> RunStatus.RUNNING.also { run.cancelRequested = true }
            else -> before
        }
        return dev.stent.store.CancelResult(after, after != before, run.workflowName, run.startedAt, clock())
    }

    @Synchronized
    override fun getRun(runId: String): RunRecord? = runs[runId]?.let(::record)

    @Synchronized
    override fun listRecords(runId: String): List<StoredRecord> = steps[runId]?.values?.toList().orEmpty()

    @Synchronized
    override fun listRuns(query: RunQuery): List<RunRecord> = runs.values.reversed()
        .filter { (query.status == null || it.status == query.status) && (query.workflowName == null || it.workflowName == query.workflowName) }
        .filter { query.parentId == null || it.parentId == query.parentId }
        .drop(query.offset).take(query.limit).map(::record)

    private fun record(r: Run) = RunRecord(
        r.id, r.workflowName, r.status, r.input, r.output, r.failure, r.queue, r.priority, r.createdAt, r.startedAt, r.updatedAt,
        r.finishedAt, r.readyAt, r.claimCount, r.owner, r.leaseExpiresAt, r.cancelRequested, r.deadlineAt, r.waitSignals.toList(), r.parentId,
    )

    override fun close() = Unit
}
