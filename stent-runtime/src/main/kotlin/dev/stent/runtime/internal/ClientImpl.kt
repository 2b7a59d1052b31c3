package dev.stent.runtime.internal

import dev.stent.AwaitTimeoutException
import dev.stent.Codec
import dev.stent.FailureKind
import dev.stent.InternalStentApi
import dev.stent.InvalidArgumentException
import dev.stent.QueueInfo
import dev.stent.QueueLimits
import dev.stent.RecordInfo
import dev.stent.RecordKind
import dev.stent.RunConflictException
import dev.stent.RunEvent
import dev.stent.RunHandle
import dev.stent.RunInfo
import dev.stent.RunNotFinishedException
import dev.stent.RunStatus
import dev.stent.ScheduleInfo
import dev.stent.Stent
import dev.stent.StentClient
import dev.stent.StentEvent
import dev.stent.StentStoreException
import dev.stent.TimeMath
import dev.stent.UnknownRunException
import dev.stent.UnknownScheduleException
import dev.stent.WorkflowCancelledException
import dev.stent.WorkflowDefinition
import dev.stent.WorkflowFailedException
import dev.stent.queueInfoOf
import dev.stent.requireArgument
import dev.stent.store.ClaimedRun
import dev.stent.store.DirectClaim
import dev.stent.store.EventRecords
import dev.stent.store.NewRun
import dev.stent.store.QueueLimitsRecord
import dev.stent.store.RunQuery
import dev.stent.store.RunRecord
import dev.stent.store.ScheduleRecord
import dev.stent.store.SignalNames
import dev.stent.toRecord
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.withContext
import java.time.Instant
import java.util.UUID
import kotlin.coroutines.EmptyCoroutineContext
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.TimeSource

@OptIn(InternalStentApi::class)
internal class ClientImpl(private val stent: Stent) : StentClient {
    private val access = stent.access
    private val notifier = stent.notifier
    private val maxBytes get() = stent.options.maxPayloadBytes
    private val reader = RunReader(access, stent.scope)

    override suspend fun <I, O> start(
        workflow: WorkflowDefinition<I, O>,
        input: I,
        id: String?,
        queue: String?,
        priority: Int?,
        delay: Duration?,
        deadline: Instant?,
        partitionKey: String?,
    ): RunHandle<O> = start(
        workflow.name, input, workflow.inputCodec, workflow.outputCodec, id,
        queue ?: workflow.queue, priority ?: workflow.priority, delay, deadline, workflow.timeout, partitionKey,
    )

    override suspend fun <I, O> start(
        workflowName: String,
        input: I,
        inputCodec: Codec<I>,
        outputCodec: Codec<O>,
        id: String?,
        queue: String?,
        priority: Int?,
        delay: Duration?,
        deadline: Instant?,
        partitionKey: String?,
    ): RunHandle<O> = start(workflowName, input, inputCodec, outputCodec, id, queue, priority, delay, deadline, null, partitionKey)

    private suspend fun <I, O> start(
        workflowName: String,
        input: I,
        inputCodec: Codec<I>,
        outputCodec: Codec<O>,
        id: String?,
        queue: String?,
        priority: Int?,
        delay: Duration?,
        deadline: Instant?,
        timeout: Duration?,
        partitionKey: String?,
    ): RunHandle<O> {
        WorkflowDefinition.validateName("workflow name", workflowName)
        val runId = id ?: UUID.randomUUID().toString()
        WorkflowDefinition.validateName("run id", runId)
        partitionKey?.let { WorkflowDefinition.validateName("partition key", it, runId, workflowName) }
        val q = queue ?: WorkflowDefinition.DEFAULT_QUEUE
        WorkflowDefinition.validateName("queue", q)
        requireArgument(delay == null || !delay.isNegative()) { "start of run '$runId': delay must not be negative, was $delay" }
        val encoded = encodePayload(inputCodec, input, maxBytes, PayloadSite("input", runId, workflowName))
        val trace = callerTrace()
        val delayMs = delay?.let(TimeMath::delayMs) ?: 0
        // a worker of this process with a free slot takes the run as it is created: no claim round trip
        val slot = if (delayMs > 0) null else stent.localWorkers.firstNotNullOfOrNull { it.reserveStart(workflowName, q) }
        val newRun = NewRun(
            runId, workflowName, encoded, q, priority ?: 0, delayMs,
            // an explicit deadline wins over the workflow's timeout
            deadlineAtMs = deadline?.let(TimeMath::epochMs),
            timeoutMs = if (deadline == null) timeout?.let(TimeMath::delayMs) else null,
            partitionKey = partitionKey,
            traceContext = trace,
            claimFor = slot?.let { DirectClaim(it.worker.id, it.leaseMs) },
        )
        val claimedAtNanos = System.nanoTime() // the lease counts from before the statement, as a claim's does
        // with a slot reserved, a caller that gives up mid-way must not leave a run claimed by a worker that never runs it
        val result = withContext(if (slot != null) NonCancellable else EmptyCoroutineContext) {
            var launched = false
            val created = try {
                access.grouped("starting run '$runId'") {
                    createRun(newRun).also { created ->
                        // a run that existed keeps the trace it was started with
                        if (created.workflowName == workflowName) {
                            stent.listeners.emit { StentEvent.RunStarted(runId, workflowName, q, created.created, trace.takeIf { created.created }) }
                        }
                        // launched from the thread that inserted it, the run starts on that thread next, with no wake-up of another
                        val claimed = created.claimed
                        if (slot != null && claimed != null) {
                            val run = ClaimedRun(
                                runId, workflowName, encoded, claimed.fencingToken, 1, emptyList(), deadlineAtMs = claimed.deadlineAtMs, queue = q,
                                startedAtMs = claimed.startedAtMs, traceContext = trace,
                            )
                            launched = slot.worker.launchStarted(run, claimedAtNanos)
                        }
                    }
                }
            } catch (e: Throwable) {
                slot?.worker?.cancelStart()
                throw e
            }
            val claimed = created.claimed
            if (slot != null && !launched) slot.worker.cancelStart()
            // the worker began to stop meanwhile: the run goes back to the database for any worker
            if (slot != null && claimed != null && !launched) releaseRefused(runId, claimed.fencingToken)
            created
        }
        if (result.workflowName != workflowName) throw RunConflictException(runId, result.workflowName, workflowName)
        if (result.claimed != null) return handle(runId, outputCodec)
        // even when the run existed: a start whose insert committed but whose reply was lost reports created=false
        notifier.workAvailable.fire()
        return handle(runId, outputCodec)
    }

    /** Gives back a run created claimed by a worker that began to stop before it launched it; if even that fails, its lease expires. */
    private suspend fun releaseRefused(runId: String, fencingToken: Long) {
        try {
            access.call("releasing run '$runId' its stopping worker was to start") { release(runId, fencingToken) }
            notifier.workAvailable.fire()
        } catch (e: StentStoreException) {
            org.slf4j.LoggerFactory.getLogger("dev.stent.client")
                .warn("run {}: created for a worker that began to stop, and not released ({}); its lease will expire", runId, e.message)
        }
    }

    override fun <O> handle(runId: String, outputCodec: Codec<O>): RunHandle<O> = Handle(runId, outputCodec)

    /** The caller's trace context: read by a Java future on the caller's thread, else here. */
    private suspend fun callerTrace(): String? = kotlinx.coroutines.currentCoroutineContext()[CallerTrace]?.let { return it.value } ?: stent.listeners.capture()

    override suspend fun <T> signal(runId: String, name: String, payload: T, codec: Codec<T>) {
        WorkflowDefinition.validateName("signal name", name)
        SignalNames.checkUserName(name)?.let { throw InvalidArgumentException("cannot send signal '$name' to run '$runId': $it", runId, null, null) }
        val encoded = encodePayload(codec, payload, maxBytes, PayloadSite("payload of signal '$name'", runId, null))
        val trace = callerTrace()
        access.call("sending signal '$name' to run '$runId'") { sendSignal(runId, name, encoded, trace) }
        notifier.signalSent(runId)
    }

    override suspend fun <O> await(runId: String, outputCodec: Codec<O>, timeout: Duration?): O {
        requireArgument(timeout == null || !timeout.isNegative()) { "await of run '$runId': timeout must not be negative, was $timeout" }
        return awaitLoop(runId, outputCodec, timeout?.takeUnless { it.isInfinite() })
    }

    /** Waits for [first]'s outcome, following its continue-as-new chain; forgets each wake-up it made. */
    private suspend fun <O> awaitLoop(first: String, outputCodec: Codec<O>, timeout: Duration?): O {
        var runId = first
        try {
            return awaitChain(first, outputCodec, timeout) { runId = it }
        } finally {
            notifier.forgetFinished(runId)
        }
    }

    private suspend fun <O> awaitChain(first: String, outputCodec: Codec<O>, timeout: Duration?, at: (String) -> Unit): O {
        var runId = first
        val started = TimeSource.Monotonic.markNow()
        // with wake-ups from other processes, polling is only the safety net
        val wakeUps = access.store.deliversWakeUps
        val maxPoll = if (wakeUps) MAX_AWAIT_POLL_WITH_WAKE_UPS else MAX_AWAIT_POLL
        var poll = if (wakeUps) 1_000.milliseconds else 20.milliseconds
        while (true) {
            val wake = notifier.finishedFor(runId)
            val armed = wake.arm()
            // A database outage is waited out like a run that is not finished yet: the run is not lost.
            val run = try {
                getRun(runId, "awaiting")
            } catch (e: StentStoreException) {
                null
            }
            if (run != null && run.status.isFinished) {
                // a run that continued as new: its chain's last run has the outcome
                val next = run.continuedAs ?: return outcome(run, outputCodec)
                notifier.forgetFinished(runId)
                runId = next
                at(next)
                poll = if (wakeUps) 1_000.milliseconds else 20.milliseconds
                continue
            }
            val left = timeout?.let { it - started.elapsedNow() }
            if (left != null && left <= Duration.ZERO) throw AwaitTimeoutException(first, timeout)
            wake.awaitArmed(armed, if (left != null && left < poll) left else poll)
            poll = (poll * 2).coerceAtMost(maxPoll)
        }
    }

    private fun <O> outcome(run: RunRecord, codec: Codec<O>): O = when (run.status) {
        RunStatus.COMPLETED -> decodePayload(codec, run.output ?: "null", PayloadSite("output", run.id, run.workflowName))
        RunStatus.FAILED -> throw WorkflowFailedException(run.id, run.workflowName, decodeFailure(run.failure) ?: unknownFailure)
        RunStatus.CANCELLED -> throw WorkflowCancelledException(run.id, run.workflowName, decodeFailure(run.failure)?.message)
        else -> error("run '${run.id}' is not finished")
    }

    override suspend fun <T> getEvent(runId: String, key: String, codec: Codec<T>): RunEvent<T>? =
        events(runId, key).lastOrNull()?.let { event(runId, key, it, codec) }

    override suspend fun <T> awaitEvent(runId: String, key: String, codec: Codec<T>, afterVersion: Long, timeout: Duration?): RunEvent<T>? {
        requireArgument(afterVersion >= 0) { "awaitEvent of run '$runId': afterVersion must not be negative, was $afterVersion" }
        requireArgument(timeout == null || !timeout.isNegative()) { "awaitEvent of run '$runId': timeout must not be negative, was $timeout" }
        val limit = timeout?.takeUnless { it.isInfinite() }
        val started = TimeSource.Monotonic.markNow()
        var poll = 20.milliseconds
        while (true) {
            val wake = notifier.signalFor(runId) // an event published in this process fires it
            val armed = wake.arm()
            val next = events(runId, key).firstOrNull { (EventRecords.version(key, it.stepId) ?: 0) > afterVersion }
            if (next != null) return event(runId, key, next, codec)
            // finished without it: nothing more will come (read after the events, so none published before the end is missed)
            if (getRun(runId, "awaiting event '$key' of").status.isFinished && events(runId, key).none {
                    (EventRecords.version(key, it.stepId) ?: 0) > afterVersion
                }
            ) return null
            val left = limit?.let { it - started.elapsedNow() }
            if (left != null && left <= Duration.ZERO) throw AwaitTimeoutException(runId, limit)
            wake.awaitArmed(armed, if (left != null && left < poll) left else poll)
            poll = (poll * 2).coerceAtMost(MAX_AWAIT_POLL * 2)
        }
    }

    private suspend fun events(runId: String, key: String) = access.call("reading event '$key' of run '$runId'") { listEvents(runId, key) }

    private fun <T> event(runId: String, key: String, record: dev.stent.store.StoredRecord, codec: Codec<T>) = RunEvent(
        decodePayload(codec, record.result ?: "null", PayloadSite("value of event '$key'", runId, null, record.stepId)),
        EventRecords.version(key, record.stepId)!!,
        instant(record.updatedAt),
    )

    override suspend fun list(
        status: RunStatus?,
        workflowName: String?,
        limit: Int,
        offset: Int,
        parentId: String?,
        queue: String?,
        failureKind: FailureKind?,
        createdAfter: Instant?,
        createdBefore: Instant?,
        beforeId: String?,
    ): List<RunInfo> = listRuns(
        RunQuery(
            status, workflowName, limit, offset, parentId, queue, failureKind,
            createdAfter = createdAfter?.let(TimeMath::epochMs), createdBefore = createdBefore?.let(TimeMath::epochMs), beforeId = beforeId,
        ),
    )

    override suspend fun stats(): dev.stent.StentStats {
        val s = access.call("counting runs") { stats() }
        val byWorkflow = s.counts.groupBy { it.workflowName }.mapValues { (_, counts) -> counts.associate { it.status to it.count } }
        return dev.stent.StentStats(byWorkflow, s.oldestPendingCreatedAt?.let(::instant), s.finishedLastMinute, s.finishedLastHour, instant(s.dbNowMs))
    }

    override suspend fun deadLetters(failureKind: FailureKind?, limit: Int, offset: Int): List<RunInfo> =
        listRuns(RunQuery(limit = limit, offset = offset, failureKind = failureKind, deadLetters = true))

    private suspend fun listRuns(query: RunQuery): List<RunInfo> {
        requireArgument(query.limit in 1..10_000) { "list: limit must be within 1..10000, was ${query.limit}" }
        requireArgument(query.offset >= 0) { "list: offset must not be negative, was ${query.offset}" }
        return access.call("listing runs") { listRuns(query) }.map { info(it, emptyList()) }
    }

    override suspend fun retry(runId: String): RunStatus {
        val status = access.call("retrying run '$runId'") { retryRun(runId) } ?: throw UnknownRunException(runId, "nothing to retry; check the id")
        if (status == RunStatus.PENDING) notifier.workAvailable.fire()
        return status
    }

    override suspend fun discard(runId: String): RunStatus =
        access.call("discarding run '$runId'") { discardRun(runId) } ?: throw UnknownRunException(runId, "nothing to discard; check the id")

    override suspend fun delete(runId: String) {
        val status = access.call("deleting run '$runId'") { deleteRun(runId) } ?: throw UnknownRunException(runId, "nothing to delete; check the id")
        if (!status.isFinished) throw RunNotFinishedException(runId, status, "delete")
    }

    override suspend fun setQueueLimits(limits: QueueLimits) {
        val record = limits.toRecord()
        access.call("setting the limits of queue '${limits.queue}'") { setQueueLimits(record) }
        notifier.workAvailable.fire()
    }

    override suspend fun removeQueueLimits(queue: String) {
        WorkflowDefinition.validateName("queue", queue)
        access.call("removing the limits of queue '$queue'") { setQueueLimits(QueueLimitsRecord(queue)) }
        notifier.workAvailable.fire()
    }

    override suspend fun listQueues(): List<QueueInfo> = access.call("listing queues") { listQueues() }.map(::queueInfoOf)

    override suspend fun <I> schedule(
        name: String,
        cron: String,
        workflow: WorkflowDefinition<I, *>,
        input: I,
        zone: java.time.ZoneId,
        catchUp: Int,
        queue: String?,
        priority: Int?,
    ): ScheduleInfo {
        WorkflowDefinition.validateName("schedule name", name)
        requireArgument(name.length <= MAX_SCHEDULE_NAME) { "schedule '$name': the name must be at most $MAX_SCHEDULE_NAME characters (it is part of run ids)" }
        requireArgument(catchUp in 0..MAX_CATCH_UP) { "schedule '$name': catchUp must be within 0..$MAX_CATCH_UP, was $catchUp" }
        val parsed = try {
            Cron.parse(cron, zone)
        } catch (e: IllegalArgumentException) {
            throw InvalidArgumentException("schedule '$name': invalid cron expression '$cron': ${e.message}; e.g. \"0 3 * * *\" for 03:00 every day")
        }
        val q = queue ?: workflow.queue
        WorkflowDefinition.validateName("queue", q)
        val encoded = encodePayload(workflow.inputCodec, input, maxBytes, PayloadSite("input of schedule '$name'", name, workflow.name))
        val now = access.call("reading the database clock") { dbNowMs() }
        access.call("saving schedule '$name'") {
            upsertSchedule(
                ScheduleRecord(
                    name, cron.trim(), zone.id, workflow.name, encoded, q, priority ?: workflow.priority, catchUp, false, parsed.next(now),
                    timeoutMs = workflow.timeout?.let(TimeMath::delayMs),
                ),
            )
        }
        return listSchedules().first { it.name == name }
    }

    override suspend fun listSchedules(): List<ScheduleInfo> = access.call("listing schedules") { listSchedules() }.map {
        ScheduleInfo(
            it.name, it.cron, java.time.ZoneId.of(it.zone), it.workflowName, it.queue, it.catchUp, it.paused,
            it.nextFireAt?.let(::instant), it.lastFireAt?.let(::instant),
        )
    }

    override suspend fun pauseSchedule(name: String) {
        if (!access.call("pausing schedule '$name'") { setSchedulePaused(name, true, null) }) throw UnknownScheduleException(name)
    }

    override suspend fun resumeSchedule(name: String) {
        val schedule = access.call("reading schedule '$name'") { listSchedules() }.firstOrNull { it.name == name } ?: throw UnknownScheduleException(name)
        val next = Cron.of(schedule).next(access.call("reading the database clock") { dbNowMs() })
        if (!access.call("resuming schedule '$name'") { setSchedulePaused(name, false, next) }) throw UnknownScheduleException(name)
    }

    override suspend fun deleteSchedule(name: String): Boolean = access.call("deleting schedule '$name'") { deleteSchedule(name) }

    override suspend fun describe(runId: String): RunInfo {
        val run = getRun(runId, "describing")
        val records = access.call("listing the records of run '$runId'") { listRecords(runId) }
        val children = if (records.none { it.kind == RecordKind.CHILD }) emptyList() else access.call("listing the children of run '$runId'") {
            listRuns(RunQuery(limit = MAX_CHILDREN_SHOWN, parentId = runId)).reversed().map { it.id }
        }
        return info(run, records, if (run.status == RunStatus.PENDING) diagnose(run) else null, children)
    }

    override suspend fun history(runId: String): dev.stent.RunHistory {
        val run = getRun(runId, "exporting")
        val (records, now) = access.call("reading the history of run '$runId'") { listRecords(runId) to dbNowMs() }
        return dev.stent.RunHistory(
            run.id, run.workflowName, run.status, run.input, run.output, run.failure, run.continuedAs, now,
            records.map { dev.stent.RunHistory.Record(it.stepId, it.kind, it.status, it.result, it.failure, it.attempts, it.wakeAt, it.createdAt) },
        )
    }

    /** Says so when no live worker serves a PENDING run's workflow and queue. */
    private suspend fun diagnose(run: RunRecord): String? {
        val (workers, now) = access.call("listing workers") { listWorkers() to dbNowMs() }
        val serving = workers.filter { run.workflowName in it.workflowNames && (it.queues == null || run.queue in it.queues!!) }
        // a worker renews its registration every heartbeat, at least once a lease
        if (serving.any { it.stoppedAt == null && it.lastSeenAt + it.leaseMs >= now }) return null
        val what = "no worker has registered workflow '${run.workflowName}' for queue '${run.queue}'"
        val last = serving.maxOfOrNull { it.stoppedAt ?: it.lastSeenAt }
        return if (last == null) "$what in the last days: the run waits until a worker that registers it starts"
        else "$what since ${instant(last)}: the run waits until a worker that registers it starts"
    }

    private fun info(run: RunRecord, records: List<dev.stent.store.StoredRecord>, diagnosis: String? = null, children: List<String> = emptyList()): RunInfo =
        RunInfo(
            run.id, run.workflowName, run.status, run.queue, run.priority,
            instant(run.createdAt), run.startedAt?.let(::instant), instant(run.updatedAt), run.finishedAt?.let(::instant),
            run.readyAt?.let(::instant), run.claimCount, run.leaseOwner, decodeFailure(run.failure), run.input, run.output,
            records.map {
                RecordInfo(
                    it.stepId, it.kind, it.status, it.attempts, it.result, decodeFailure(it.failure),
                    it.wakeAt?.let(::instant), instant(it.updatedAt), it.createdAt.takeIf { c -> c > 0 }?.let(::instant),
                )
            },
            run.deadlineAt?.let(::instant), diagnosis, if (run.status == RunStatus.WAITING) run.waitSignals.toSet() else emptySet(),
            run.parentId, children, run.partitionKey, run.failureKind, run.retries, run.discardedAt?.let(::instant), run.continuedAs,
        )

    override suspend fun cancel(runId: String): RunStatus {
        val result = access.call("cancelling run '$runId'") { requestCancel(runId) }
            ?: throw UnknownRunException(runId, "nothing to cancel; check the id")
        val status = result.status
        if (status == RunStatus.CANCELLED) notifier.runFinished(runId) else notifier.cancelRequested(runId)
        // a run no worker holds is cancelled here: its finish is heard from here, once
        if (result.cancelledNow) {
            stent.listeners.emit { StentEvent.RunFinished(runId, result.workflowName, status, null, null, result.startedAt?.let { result.dbNowMs - it }) }
        }
        return status
    }

    private suspend fun getRun(runId: String, doing: String): RunRecord {
        val run = try {
            reader.read(runId)
        } catch (e: StentStoreException) {
            throw StentStoreException("database error while $doing run '$runId': ${e.cause?.message ?: e.message}", e.cause ?: e)
        }
        return run ?: throw UnknownRunException(runId, "it was never started in this database; check the id and the database")
    }

    private inner class Handle<O>(override val id: String, private val codec: Codec<O>) : RunHandle<O> {
        override suspend fun await(timeout: Duration?): O = this@ClientImpl.await(id, codec, timeout)
        override suspend fun describe(): RunInfo = this@ClientImpl.describe(id)
        override suspend fun cancel(): RunStatus = this@ClientImpl.cancel(id)
        override fun toString(): String = "RunHandle($id)"
    }

    private companion object {
        val MAX_AWAIT_POLL = 500.milliseconds
        const val MAX_CHILDREN_SHOWN = 1_000
        const val MAX_SCHEDULE_NAME = 150
        const val MAX_CATCH_UP = 1_000
        val MAX_AWAIT_POLL_WITH_WAKE_UPS = 5_000.milliseconds
        val unknownFailure = dev.stent.Failure("unknown", "no failure was recorded")
        fun instant(ms: Long): Instant = Instant.ofEpochMilli(ms)
    }
}
