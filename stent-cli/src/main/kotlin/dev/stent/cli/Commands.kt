package dev.stent.cli

import dev.stent.Codecs
import dev.stent.Failure
import dev.stent.FailureKind
import dev.stent.QueueLimits
import dev.stent.RunInfo
import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentException
import dev.stent.dashboard.RunTimeline
import dev.stent.dashboard.StentDashboard
import kotlinx.coroutines.delay
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonArray
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import picocli.CommandLine.ArgGroup
import picocli.CommandLine.Command
import picocli.CommandLine.Option
import picocli.CommandLine.Parameters
import java.time.Duration
import java.time.Instant
import java.time.format.DateTimeParseException

@Command(
    name = "runs",
    description = ["List, show, export, signal, cancel, retry and delete runs."],
    subcommands = [RunsList::class, RunsShow::class, RunsHistory::class, RunsSignal::class, RunsCancel::class, RunsRetry::class, RunsDelete::class],
)
class RunsCommand : Group()

/** The filters `runs list` and the bulk operations share. */
class RunFilters {
    @Option(names = ["--status"], description = ["only runs in this status: \${COMPLETION-CANDIDATES}"])
    var status: RunStatus? = null

    @Option(names = ["--workflow"], description = ["only runs of this workflow"])
    var workflow: String? = null

    @Option(names = ["--queue"], description = ["only runs of this queue"])
    var queue: String? = null

    @Option(
        names = ["--since"], paramLabel = "TIME",
        description = ["only runs created since TIME: an ISO instant (2026-12-01T10:00:00Z) or an age (90s, 15m, 2h, 7d)"],
    )
    var since: String? = null

    @Option(names = ["--until"], paramLabel = "TIME", description = ["only runs created before TIME (same forms as --since)"])
    var until: String? = null

    /** Every run the filters match, by cursor (runs started meanwhile do not shift it), the newest first. */
    suspend fun all(stent: Stent, kind: FailureKind? = null, keep: (RunInfo) -> Boolean = { true }): List<String> {
        val ids = ArrayList<String>()
        var last: RunInfo? = null
        while (true) {
            val page = page(stent, PAGE, 0, kind, after = last)
            page.filter(keep).mapTo(ids) { it.id }
            if (page.size < PAGE) return ids
            last = page.last()
        }
    }

    /** A page of the runs the filters match: from [offset], or the runs listed after [after]. */
    suspend fun page(stent: Stent, limit: Int, offset: Int, kind: FailureKind? = null, after: RunInfo? = null): List<RunInfo> =
        stent.client.list(
            status, workflow, limit, offset, queue = queue, failureKind = kind, createdAfter = since?.let(::time),
            createdBefore = after?.createdAt ?: until?.let(::time), beforeId = after?.id,
        )
}

private const val PAGE = 1_000

/** An age: `250ms`, `90s`, `15m`, `2h`, `7d`; null when [text] is not one. */
fun age(text: String): Duration? {
    val m = Regex("""(\d{1,12})(ms|s|m|h|d)""").matchEntire(text.trim()) ?: return null
    val n = m.groupValues[1].toLong()
    return when (m.groupValues[2]) {
        "ms" -> Duration.ofMillis(n)
        "s" -> Duration.ofSeconds(n)
        "m" -> Duration.ofMinutes(n)
        "h" -> Duration.ofHours(n)
        else -> Duration.ofDays(n)
    }
}

/** An ISO instant, or an age before now (see [age]). */
fun time(text: String): Instant {
    age(text)?.let {
        return try {
            Instant.now().minus(it)
        } catch (e: java.time.DateTimeException) {
            throw CliException(ExitCodes.USAGE, "time '$text' reaches back before the first instant there is")
        }
    }
    return try {
        Instant.parse(text)
    } catch (e: DateTimeParseException) {
        throw CliException(ExitCodes.USAGE, "cannot read time '$text': use an ISO instant (2026-12-01T10:00:00Z) or an age (90s, 15m, 2h, 7d)")
    }
}

@Command(name = "list", description = ["List runs, newest first."])
class RunsList : Action() {
    @ArgGroup(exclusive = false)
    var filters = RunFilters()

    @Option(names = ["--limit"], defaultValue = "50", description = ["runs per page (1-10000, default \${DEFAULT-VALUE})"])
    var limit: Int = 50

    @Option(names = ["--page"], defaultValue = "1", description = ["which page (default \${DEFAULT-VALUE})"])
    var page: Int = 1

    override suspend fun execute(stent: Stent): Int {
        if (limit !in 1..10_000) usageError("--limit must be within 1..10000, was $limit")
        if (page < 1) usageError("--page must be at least 1, was $page")
        val runs = filters.page(stent, limit, (page - 1) * limit)
        printList(runs, ::summary, listOf("ID", "WORKFLOW", "STATUS", "QUEUE", "CREATED", "FINISHED")) {
            listOf(it.id, it.workflowName, statusText(it), it.queue, it.createdAt.toString(), it.finishedAt?.toString() ?: "")
        }
        if (!json && runs.size == limit) err.println("(page $page; more with --page ${page + 1})")
        return ExitCodes.OK
    }
}

@Command(
    name = "history",
    description = ["Export one run's history as JSON, to check a new version of its workflow against with WorkflowReplayer."],
)
class RunsHistory : Action() {
    @Parameters(paramLabel = "ID", description = ["the run's id"])
    lateinit var id: String

    @Option(names = ["--out"], paramLabel = "FILE", description = ["write it to FILE (replacing it) instead of printing it"])
    var file: java.nio.file.Path? = null

    override suspend fun execute(stent: Stent): Int {
        val history = stent.client.history(id)
        val target = file
        if (target == null) {
            out.println(history.toJson())
        } else {
            history.write(target)
            err.println("wrote the history of run '$id' (${history.records.size} records) to $target")
        }
        return ExitCodes.OK
    }
}

@Command(name = "show", description = ["Show one run: input, output, failure and its records as a timeline."])
class RunsShow : Action() {
    @Parameters(paramLabel = "ID", description = ["the run's id"])
    lateinit var id: String

    override suspend fun execute(stent: Stent): Int {
        val run = stent.client.describe(id)
        if (json) {
            out.println(details(run))
            return ExitCodes.OK
        }
        val fields = listOfNotNull(
            "run" to run.id, "workflow" to run.workflowName, "status" to statusText(run), "queue" to run.queue,
            "created" to run.createdAt.toString(), run.startedAt?.let { "started" to it.toString() }, run.finishedAt?.let { "finished" to it.toString() },
            "claims" to run.claimCount.toString(), run.leaseOwner?.let { "worker" to it }, run.parentId?.let { "parent" to it },
            run.continuedAs?.let { "continued as" to it },
            run.waitingForSignals.takeIf { it.isNotEmpty() }?.let { "waiting for" to it.joinToString() },
            run.diagnosis?.let { "diagnosis" to it }, "input" to run.input, run.output?.let { "output" to it },
        )
        fields.forEach { (k, v) -> out.println(k.padEnd(12) + v) }
        run.failure?.let { f ->
            out.println("failure".padEnd(12) + f.type + (f.message?.let { ": $it" } ?: ""))
            failureLines(f).forEach { out.println(" ".repeat(12) + it) }
        }
        if (run.children.isNotEmpty()) out.println("children".padEnd(12) + run.children.joinToString())
        out.println()
        out.println("records (times from the run's creation)")
        table(
            out, listOf("AT", "RECORD", "KIND", "STATUS", "ATTEMPTS", "TOOK", "UNTIL"),
            RunTimeline.of(run).map { e ->
                listOf(
                    "+" + seconds(Duration.between(run.createdAt, e.start)), e.record.id, e.record.kind.name, e.record.status.name,
                    e.record.attempts.toString(), seconds(Duration.between(e.start, e.end)), e.record.wakeAt?.toString() ?: "",
                )
            },
        )
        return ExitCodes.OK
    }
}

@Command(name = "signal", description = ["Send a signal to a run."])
class RunsSignal : Action() {
    @Parameters(index = "0", paramLabel = "ID", description = ["the run's id"])
    lateinit var id: String

    @Parameters(index = "1", paramLabel = "NAME", description = ["the signal's name"])
    lateinit var name: String

    @Parameters(index = "2", arity = "0..1", paramLabel = "PAYLOAD", description = ["the payload as JSON (default null), e.g. '{\"by\":\"ana\"}' or '\"yes\"'"])
    var payload: String = "null"

    override suspend fun execute(stent: Stent): Int {
        val element = try {
            Codecs.json.parseToJsonElement(payload)
        } catch (e: Exception) {
            usageError("PAYLOAD is not JSON: ${e.message}; quote a string as '\"text\"'")
        }
        stent.client.signal(id, name, element, Codecs.kotlinx(JsonElement.serializer()))
        report(json, out, "signal '$name' sent to run '$id'") { put("id", id); put("signal", name) }
        return ExitCodes.OK
    }
}

/** A bulk operation on runs named by id or chosen by filters (`--all`), with progress on stderr. */
abstract class BulkAction(private val verb: String) : Action() {
    @Parameters(arity = "0..*", paramLabel = "ID", description = ["the runs' ids"])
    var ids: List<String> = emptyList()

    @Option(names = ["--all"], description = ["every run the filters match (runs commands need at least one filter)"])
    var all: Boolean = false

    @ArgGroup(exclusive = false)
    var filters = RunFilters()

    /** What the operation did to one run: [changed] false when the run was not in a state for it. */
    class Outcome(val changed: Boolean, val text: String)

    /** Applies the operation to one run. */
    abstract suspend fun apply(stent: Stent, id: String): Outcome

    /** The runs `--all` acts on: every run the filters match, listed (by cursor) before any is touched. */
    open suspend fun select(stent: Stent): List<String> {
        if (listOf(filters.status, filters.workflow, filters.queue, filters.since, filters.until).all { it == null }) {
            usageError("--all needs at least one filter (--status, --workflow, --queue, --since, --until): it would act on every run")
        }
        return filters.all(stent)
    }

    override suspend fun execute(stent: Stent): Int {
        if (ids.isNotEmpty() == all) usageError("name the runs' ids, or --all with filters (not both)")
        val targets = if (all) select(stent) else ids
        var failed = 0
        targets.forEachIndexed { i, id ->
            val outcome = try {
                apply(stent, id)
            } catch (e: dev.stent.StentStoreException) {
                throw e // the database is gone: every other run would wait for it too
            } catch (e: StentException) {
                if (!all && targets.size == 1) throw e
                Outcome(false, "failed: ${e.message}")
            }
            if (!outcome.changed) failed++
            // one line per run as it happens (JSON lines with --json), so an interrupted run leaves a record
            if (json) {
                out.println(buildJsonObject { put("id", id); put("changed", outcome.changed); put("result", outcome.text) })
            } else {
                out.println("$id: ${outcome.text}")
            }
            out.flush()
            if (targets.size > 1 && ((i + 1) % PROGRESS_EVERY == 0 || i + 1 == targets.size)) err.println("$verb ${i + 1}/${targets.size}")
        }
        if (all && targets.isEmpty()) err.println("no run matches")
        return if (failed > 0) ExitCodes.FAILED else ExitCodes.OK
    }

    private companion object {
        const val PROGRESS_EVERY = 100
    }
}

@Command(name = "cancel", description = ["Cancel runs: a PENDING or WAITING run at once, a RUNNING one by its worker."])
class RunsCancel : BulkAction("cancelled") {
    override suspend fun apply(stent: Stent, id: String): Outcome = when (val s = stent.client.cancel(id)) {
        RunStatus.COMPLETED, RunStatus.FAILED -> Outcome(false, "not cancelled: it is $s")
        RunStatus.RUNNING -> Outcome(true, "cancel requested: its worker stops it")
        else -> Outcome(true, "now $s")
    }
}

@Command(name = "retry", description = ["Run FAILED runs again from the step that failed them (finished steps are kept)."])
class RunsRetry : BulkAction("retried") {
    override suspend fun apply(stent: Stent, id: String): Outcome = retried(stent, id)
}

@Command(name = "delete", description = ["Delete finished runs and their records."])
class RunsDelete : BulkAction("deleted") {
    override suspend fun apply(stent: Stent, id: String): Outcome {
        stent.client.delete(id)
        return Outcome(true, "deleted")
    }
}

private suspend fun retried(stent: Stent, id: String): BulkAction.Outcome = when (val s = stent.client.retry(id)) {
    RunStatus.PENDING -> BulkAction.Outcome(true, "now PENDING")
    else -> BulkAction.Outcome(false, "not retried: it is $s (only a FAILED run is)")
}

@Command(
    name = "dead-letters",
    description = ["FAILED runs not discarded: list, retry or discard them."],
    subcommands = [DeadLettersList::class, DeadLettersRetry::class, DeadLettersDiscard::class],
)
class DeadLettersCommand : Group()

@Command(name = "list", description = ["List dead letters, newest first."])
class DeadLettersList : Action() {
    @Option(names = ["--kind"], description = ["only this failure kind: \${COMPLETION-CANDIDATES}"])
    var kind: FailureKind? = null

    @Option(names = ["--limit"], defaultValue = "50", description = ["how many (default \${DEFAULT-VALUE})"])
    var limit: Int = 50

    override suspend fun execute(stent: Stent): Int {
        if (limit !in 1..10_000) usageError("--limit must be within 1..10000, was $limit")
        val runs = stent.client.deadLetters(kind, limit)
        printList(runs, ::summary, listOf("ID", "WORKFLOW", "KIND", "FAILED AT", "RETRIES", "FAILURE")) {
            listOf(it.id, it.workflowName, it.failureKind?.name ?: "", it.finishedAt?.toString() ?: "", it.retries.toString(), oneLine(it.failure))
        }
        return ExitCodes.OK
    }
}

/** A bulk operation on dead letters: `--all` takes the FAILED runs not discarded that the filters (and `--kind`) match. */
abstract class DeadLetterAction(verb: String) : BulkAction(verb) {
    @Option(names = ["--kind"], description = ["with --all: only this failure kind: \${COMPLETION-CANDIDATES}"])
    var kind: FailureKind? = null

    override suspend fun select(stent: Stent): List<String> {
        if (filters.status != null && filters.status != RunStatus.FAILED) usageError("dead letters are FAILED runs: leave out --status")
        filters.status = RunStatus.FAILED
        return filters.all(stent, kind) { it.discardedAt == null }
    }
}

@Command(name = "retry", description = ["Retry dead letters (from the step that failed them)."])
class DeadLettersRetry : DeadLetterAction("retried") {
    override suspend fun apply(stent: Stent, id: String): Outcome = retried(stent, id)
}

@Command(name = "discard", description = ["Discard dead letters: they stay FAILED but leave the list (and retention deletes them)."])
class DeadLettersDiscard : DeadLetterAction("discarded") {
    override suspend fun apply(stent: Stent, id: String): Outcome = when (val s = stent.client.discard(id)) {
        RunStatus.FAILED -> Outcome(true, "discarded")
        else -> Outcome(false, "not discarded: it is $s (only a FAILED run is)")
    }
}

@Command(name = "stats", description = ["Runs by workflow and status, the oldest pending run, and how many finished lately."])
class StatsCommand : Action() {
    override suspend fun execute(stent: Stent): Int {
        val s = stent.client.stats()
        val statuses = RunStatus.entries
        if (json) {
            out.println(
                buildJsonObject {
                    put("at", s.at.toString())
                    put("byStatus", JsonObject(statuses.associate { it.name to JsonPrimitive(s.byStatus[it] ?: 0) }))
                    put(
                        "byWorkflow",
                        JsonObject(s.byWorkflow.mapValues { (_, c) -> JsonObject(statuses.associate { it.name to JsonPrimitive(c[it] ?: 0) }) }),
                    )
                    put("oldestPending", s.oldestPending?.toString())
                    put("finishedLastMinute", s.finishedLastMinute)
                    put("finishedLastHour", s.finishedLastHour)
                },
            )
            return ExitCodes.OK
        }
        val rows = s.byWorkflow.toSortedMap().map { (w, c) -> listOf(w) + statuses.map { (c[it] ?: 0).toString() } + c.values.sum().toString() }
        val total = listOf("(all)") + statuses.map { (s.byStatus[it] ?: 0).toString() } + s.byStatus.values.sum().toString()
        table(out, listOf("WORKFLOW") + statuses.map { it.name } + "TOTAL", rows + listOf(total))
        out.println()
        out.println("oldest pending: " + (s.oldestPending?.let { "$it (${seconds(Duration.between(it, s.at))} ago)" } ?: "none"))
        out.println("finished: ${s.finishedLastMinute} in the last minute, ${s.finishedLastHour} in the last hour")
        return ExitCodes.OK
    }
}

@Command(name = "watch", description = ["Print runs as they change (newest first page, polled), until interrupted."])
class WatchCommand : Action() {
    @ArgGroup(exclusive = false)
    var filters = RunFilters()

    @Option(names = ["--interval"], defaultValue = "1s", paramLabel = "AGE", description = ["time between polls (default \${DEFAULT-VALUE})"])
    var interval: String = "1s"

    @Option(names = ["--limit"], defaultValue = "100", description = ["how many of the newest runs to watch (default \${DEFAULT-VALUE})"])
    var limit: Int = 100

    @Option(names = ["--count"], paramLabel = "N", description = ["stop after N polls (default: never)"])
    var count: Int? = null

    override suspend fun execute(stent: Stent): Int {
        val every = age(interval) ?: usageError("--interval must be an age such as 500ms or 2s, was '$interval'")
        if (every < Duration.ofMillis(100)) usageError("--interval must be at least 100ms, was $interval")
        if (limit !in 1..10_000) usageError("--limit must be within 1..10000, was $limit")
        var seen = HashMap<String, RunStatus>()
        var polls = 0
        while (count?.let { polls < it } != false) {
            val now = filters.page(stent, limit, 0)
            val before = seen
            // only the runs on the page now are remembered
            seen = HashMap(now.associate { it.id to it.status })
            for (run in now.reversed()) {
                val was = before[run.id]
                if (was == run.status) continue
                if (json) {
                    out.println(
                        buildJsonObject {
                            put("at", Instant.now().toString())
                            put("id", run.id)
                            put("workflow", run.workflowName)
                            put("from", was?.name)
                            put("to", run.status.name)
                        },
                    )
                } else {
                    out.println("${Instant.now()}  ${run.id}  ${run.workflowName}  ${was?.let { "$it -> " } ?: ""}${statusText(run)}")
                }
            }
            out.flush()
            if (++polls == count) break
            delay(every.toMillis())
        }
        return ExitCodes.OK
    }
}

@Command(name = "dashboard", description = ["Serve the web dashboard of the database until interrupted (see docs/dashboard.md)."])
class DashboardCommand : Action() {
    @Option(names = ["--port"], defaultValue = "8080", description = ["the port (default \${DEFAULT-VALUE}; 0: any free port)"])
    var port: Int = 8080

    @Option(names = ["--host"], defaultValue = "127.0.0.1", description = ["the address to listen on (default \${DEFAULT-VALUE}); any other needs --token"])
    var host: String = "127.0.0.1"

    @Option(names = ["--token"], defaultValue = "\${env:STENT_DASHBOARD_TOKEN}", description = ["the token a browser must give once (\$STENT_DASHBOARD_TOKEN)"])
    var token: String? = null

    override suspend fun execute(stent: Stent): Int {
        StentDashboard.start(stent, port, host, token?.takeIf { it.isNotBlank() }).use { dashboard ->
            err.println("stent dashboard at ${dashboard.url} (Ctrl-C stops it)")
            err.flush()
            kotlinx.coroutines.awaitCancellation()
        }
    }
}

@Command(
    name = "schedules",
    description = ["List, pause, resume or delete cron schedules."],
    subcommands = [SchedulesList::class, SchedulePause::class, ScheduleResume::class, ScheduleDelete::class],
)
class SchedulesCommand : Group()

@Command(name = "list", description = ["List schedules."])
class SchedulesList : Action() {
    override suspend fun execute(stent: Stent): Int {
        val schedules = stent.client.listSchedules()
        val toJson = { s: dev.stent.ScheduleInfo ->
            buildJsonObject {
                put("name", s.name)
                put("cron", s.cron)
                put("zone", s.zone.id)
                put("workflow", s.workflowName)
                put("queue", s.queue)
                put("paused", s.paused)
                put("nextFireAt", s.nextFireAt?.toString())
                put("lastFireAt", s.lastFireAt?.toString())
            }
        }
        printList(schedules, toJson, listOf("NAME", "CRON", "ZONE", "WORKFLOW", "PAUSED", "NEXT", "LAST")) {
            listOf(it.name, it.cron, it.zone.id, it.workflowName, it.paused.toString(), it.nextFireAt?.toString() ?: "", it.lastFireAt?.toString() ?: "")
        }
        return ExitCodes.OK
    }
}

/** A change to one schedule, reported as [done] (and in JSON as [field] = [value]). */
abstract class ScheduleAction(private val done: String, private val field: String, private val value: Boolean) : Action() {
    @Parameters(paramLabel = "NAME", description = ["the schedule's name"])
    lateinit var name: String

    abstract suspend fun change(stent: Stent)

    override suspend fun execute(stent: Stent): Int {
        change(stent)
        report(json, out, "schedule '$name' $done") { put("schedule", name); put(field, value) }
        return ExitCodes.OK
    }
}

@Command(name = "pause", description = ["Stop a schedule from firing until it is resumed."])
class SchedulePause : ScheduleAction("paused", "paused", true) {
    override suspend fun change(stent: Stent) = stent.client.pauseSchedule(name)
}

@Command(name = "resume", description = ["Fire a paused schedule again from its next tick."])
class ScheduleResume : ScheduleAction("resumed", "paused", false) {
    override suspend fun change(stent: Stent) = stent.client.resumeSchedule(name)
}

@Command(name = "delete", description = ["Delete a schedule (the runs it started stay)."])
class ScheduleDelete : ScheduleAction("deleted", "deleted", true) {
    override suspend fun change(stent: Stent) {
        if (!stent.client.deleteSchedule(name)) throw dev.stent.UnknownScheduleException(name)
    }
}

@Command(
    name = "queues",
    description = ["List queues with their limits and unfinished runs, or set a queue's limits."],
    subcommands = [QueuesList::class, QueuesLimit::class],
)
class QueuesCommand : Group()

@Command(name = "list", description = ["List queues: limits, and runs pending, running and waiting."])
class QueuesList : Action() {
    override suspend fun execute(stent: Stent): Int {
        val queues = stent.client.listQueues()
        val toJson = { q: dev.stent.QueueInfo ->
            buildJsonObject {
                put("queue", q.queue)
                put("concurrency", q.limits?.concurrency)
                put("concurrencyPerKey", q.limits?.concurrencyPerKey)
                put("rateLimit", q.limits?.rateLimit)
                put("ratePeriodMs", q.limits?.javaRatePeriod?.toMillis())
                put("pending", q.pending)
                put("running", q.running)
                put("waiting", q.waiting)
            }
        }
        printList(queues, toJson, listOf("QUEUE", "CONCURRENCY", "PER KEY", "RATE", "PENDING", "RUNNING", "WAITING")) { q ->
            val l = q.limits
            listOf(
                q.queue, l?.concurrency?.toString() ?: "-", l?.concurrencyPerKey?.toString() ?: "-",
                l?.rateLimit?.let { "$it/${l.javaRatePeriod}" } ?: "-", q.pending.toString(), q.running.toString(), q.waiting.toString(),
            )
        }
        return ExitCodes.OK
    }
}

@Command(name = "limit", description = ["Set a queue's limits, enforced by every worker's claim (no option: remove them)."])
class QueuesLimit : Action() {
    @Parameters(paramLabel = "QUEUE", description = ["the queue"])
    lateinit var queue: String

    @Option(names = ["--concurrency"], description = ["runs of the queue executing at once, over every worker"])
    var concurrency: Int? = null

    @Option(names = ["--per-key"], description = ["runs of one partition key executing at once"])
    var perKey: Int? = null

    @Option(names = ["--rate"], paramLabel = "N/AGE", description = ["at most N first starts per period, e.g. 20/1s or 1000/1m"])
    var rate: String? = null

    override suspend fun execute(stent: Stent): Int {
        val wanted = this
        val limits = QueueLimits.builder(queue).apply {
            wanted.concurrency?.let { concurrency(it) }
            wanted.perKey?.let { concurrencyPerKey(it) }
            wanted.rate?.let { r ->
                val (n, per) = r.split('/').takeIf { it.size == 2 } ?: usageError("--rate must be N/AGE, e.g. 20/1s, was '$r'")
                val starts = n.toIntOrNull() ?: usageError("--rate must be N/AGE, e.g. 20/1s, was '$r'")
                rateLimit(starts, age(per) ?: usageError("--rate must be N/AGE, e.g. 20/1s, was '$r'"))
            }
        }.build()
        stent.client.setQueueLimits(limits)
        report(json, out, "queue '$queue': $limits") { put("queue", queue); put("limits", limits.toString()) }
        return ExitCodes.OK
    }
}

/** A command that only groups others: run alone, it says which to name. */
abstract class Group : Runnable {
    @picocli.CommandLine.Spec
    lateinit var spec: picocli.CommandLine.Model.CommandSpec

    override fun run() = throw picocli.CommandLine.ParameterException(
        spec.commandLine(),
        "name a command after '${spec.qualifiedName()}': ${spec.subcommands().keys.joinToString()}",
    )
}

// ---- output helpers ----

/** A run's status, with the failure kind of a FAILED one. */
fun statusText(run: RunInfo): String = run.status.name + (run.failureKind?.let { " (${it.name.lowercase()})" } ?: "")

fun oneLine(failure: Failure?): String =
    failure?.let { f -> (f.type.substringAfterLast('.') + (f.message?.let { ": $it" } ?: "")).replace('\n', ' ').take(120) } ?: ""

fun failureLines(failure: Failure): List<String> = buildList {
    var f: Failure? = failure
    var first = true
    while (f != null) {
        if (!first) add("caused by ${f.type}" + (f.message?.let { ": $it" } ?: ""))
        addAll(f.stackTrace.lines().filter { it.isNotBlank() }.take(20))
        first = false
        f = f.cause
    }
}

fun summary(run: RunInfo): JsonObject = buildJsonObject {
    put("id", run.id)
    put("workflow", run.workflowName)
    put("status", run.status.name)
    put("failureKind", run.failureKind?.name)
    put("queue", run.queue)
    put("createdAt", run.createdAt.toString())
    put("startedAt", run.startedAt?.toString())
    put("finishedAt", run.finishedAt?.toString())
    put("retries", run.retries)
}

fun details(run: RunInfo): JsonObject = buildJsonObject {
    summary(run).forEach { (k, v) -> put(k, v) }
    put("claimCount", run.claimCount)
    put("leaseOwner", run.leaseOwner)
    put("parentId", run.parentId)
    put("continuedAs", run.continuedAs)
    put("children", buildJsonArray { run.children.forEach { add(JsonPrimitive(it)) } })
    put("waitingForSignals", buildJsonArray { run.waitingForSignals.forEach { add(JsonPrimitive(it)) } })
    put("diagnosis", run.diagnosis)
    put("input", parsed(run.input))
    put("output", run.output?.let(::parsed) ?: JsonNull)
    put("failure", run.failure?.let(::failureJson) ?: JsonNull)
    put(
        "records",
        buildJsonArray {
            RunTimeline.of(run).forEach { e ->
                val r = e.record
                add(
                    buildJsonObject {
                        put("id", r.id)
                        put("kind", r.kind.name)
                        put("status", r.status.name)
                        put("attempts", r.attempts)
                        put("startedAt", e.start.toString())
                        put("endedAt", e.end.toString())
                        put("updatedAt", r.updatedAt.toString())
                        put("wakeAt", r.wakeAt?.toString())
                        put("result", r.result?.let(::parsed) ?: JsonNull)
                        put("failure", r.failure?.let(::failureJson) ?: JsonNull)
                    },
                )
            }
        },
    )
}

private fun failureJson(f: Failure): JsonObject = buildJsonObject {
    put("type", f.type)
    put("message", f.message)
    put("stackTrace", f.stackTrace)
    put("cause", f.cause?.let(::failureJson) ?: JsonNull)
}

private fun parsed(text: String): JsonElement = try {
    Codecs.json.parseToJsonElement(text)
} catch (e: Exception) {
    JsonPrimitive(text)
}

fun seconds(d: Duration): String = "%.3fs".format(java.util.Locale.ROOT, d.toMillis() / 1000.0)

fun table(out: java.io.PrintWriter, headers: List<String>, rows: List<List<String>>) {
    val widths = headers.indices.map { i -> (rows.map { it[i].length } + headers[i].length).max() }
    fun line(cells: List<String>) = cells.mapIndexed { i, c -> if (i == cells.lastIndex) c else c.padEnd(widths[i]) }.joinToString("  ").trimEnd()
    out.println(line(headers))
    rows.forEach { out.println(line(it)) }
}

/** A list: one JSON array of [toJson] for a script, or a table of [headers] and [row] for a person. */
fun <T> Action.printList(items: List<T>, toJson: (T) -> JsonObject, headers: List<String>, row: (T) -> List<String>) {
    if (json) out.println(buildJsonArray { items.forEach { add(toJson(it)) } }) else table(out, headers, items.map(row))
}

/** One line for a person, or a JSON object for a script. */
fun report(json: Boolean, out: java.io.PrintWriter, text: String, fields: kotlinx.serialization.json.JsonObjectBuilder.() -> Unit) {
    if (json) out.println(buildJsonObject(fields)) else out.println(text)
}
