package dev.stent.bench

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.awaitSignal
import dev.stent.codecOf
import dev.stent.exposed.Stents
import dev.stent.it.RestartablePg
import dev.stent.signal
import dev.stent.startByName
import dev.stent.step
import dev.stent.workflow
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import java.io.File
import java.io.FileOutputStream
import java.nio.file.Files
import java.sql.Connection
import java.sql.DriverManager
import java.util.concurrent.TimeUnit
import kotlin.random.Random
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

/**
 * The log step bodies append to: `B <runId> <stepId> <pid> <epochMs> <execution>` at the start of every body
 * execution, where `execution` (`<pid>-<random>`) is also what the body returns: the recorded result names
 * exactly which execution was recorded.
 */
private val chaosLog: File? = System.getProperty("stent.chaos.log")?.let(::File)

private fun logBody(runId: String, stepId: String): String {
    val pid = ProcessHandle.current().pid()
    val execution = "$pid-${java.util.UUID.randomUUID().toString().take(8)}"
    chaosLog?.let { f ->
        FileOutputStream(f, true).use { it.write("B $runId $stepId $pid ${System.currentTimeMillis()} $execution\n".toByteArray()) }
    }
    return execution
}

/** Four steps around a durable sleep and a signal; each step's result names the execution that recorded it. */
val chaosWorkflow = workflow<Int, String>("chaos") { i ->
    suspend fun body(runId: String, stepId: String): String = logBody(runId, stepId).also { delay(Random.nextLong(5, 40)) }
    step("s1") { body(runId, stepId) }
    sleep((300 + (i % 7) * 200).milliseconds, id = "nap")
    step("s2") { body(runId, stepId) }
    awaitSignal<String>("go")
    step("s3") { body(runId, stepId) }
    step("s4") { body(runId, stepId) }
    "done"
}

/** How hard to shake: worker JVMs, runs, kills, one freeze, one database restart (PostgreSQL). */
class ChaosConfig(val workers: Int, val runs: Int, val kills: Int, val leaseMs: Long, val deadlineMinutes: Int) {
    companion object {
        val QUICK = ChaosConfig(workers = 3, runs = 120, kills = 3, leaseMs = 2000, deadlineMinutes = 4)
        val FULL = ChaosConfig(workers = 4, runs = 1500, kills = 10, leaseMs = 2000, deadlineMinutes = 15)

        /** For the broken variants: small, since they must fail, not finish. */
        val BROKEN = ChaosConfig(workers = 2, runs = 40, kills = 1, leaseMs = 2000, deadlineMinutes = 2)
    }
}

/**
 * A deliberately broken worker, switched on in the worker JVMs with `-Dstent.chaos.broken=<name>`,
 * to prove the harness fails when the guarantee it checks is broken.
 */
enum class BrokenVariant(val property: String) {
    /** The engine forgets finished steps at every claim, so healthy workers run them again. */
    MEMO_OFF("memo-off"),

    /** The store writes a final record a second time after recording it (an overwrite). */
    OVERWRITE("overwrite"),
}

/** The closing line of one store's chaos run. */
class ChaosSummary(
    val store: String, val runs: Int, val completed: Int, val lost: Int, val duplicateCheckpoints: Int, val finalWrites: Int,
    val reExecuted: Int, val explained: Int, val unexplained: Int, val kills: Int,
    val disruptions: Int, val disruptionsOnLeasedRuns: Int,
) {
    val ok: Boolean
        get() = lost == 0 && duplicateCheckpoints == 0 && unexplained == 0 && disruptionsOnLeasedRuns == disruptions && finalWrites > 0

    override fun toString() =
        "chaos store=$store runs=$runs completed=$completed lost=$lost duplicate_checkpoints=$duplicateCheckpoints " +
            "final_writes=$finalWrites re_executed_bodies=$reExecuted explained=$explained unexplained=$unexplained kills=$kills " +
            "disruptions=$disruptions on_leased_runs=$disruptionsOnLeasedRuns result=${if (ok) "OK" else "FAIL"}"
}

/** `scripts/chaos [--quick] [--stores=sqlite,postgres] [--broken=memo-off|overwrite]`: prints one line per store; exits 1 if any is not OK. */
fun main(args: Array<String>) {
    val broken = args.firstOrNull { it.startsWith("--broken=") }?.substringAfter("=")?.let { b -> BrokenVariant.entries.single { it.property == b } }
    val config = if ("--quick" in args) ChaosConfig.QUICK else ChaosConfig.FULL
    val stores = args.firstOrNull { it.startsWith("--stores=") }?.substringAfter("=")?.split(",") ?: listOf("sqlite", "postgres")
    val summaries = stores.map { Chaos(config, broken).run(it) }
    summaries.forEach { println(it) }
    exitProcess(if (summaries.all { it.ok }) 0 else 1)
}

/** A disruption of the workers: [pids] (null: every process, a database restart) from [fromMs] to [toMs]. */
private class Disruption(val kind: String, val pids: Set<String>?, val fromMs: Long, val toMs: Long, val hitLeasedRuns: Boolean)

/**
 * One chaos run against one store.
 *
 * What it checks, and how each check can fail:
 * - lost: a run that did not complete.
 * - duplicate checkpoints: the database itself logs every write of a final record (a trigger on
 *   the records table, installed here), so a final record written twice shows, whatever the table's key.
 * - unexplained re-executions: every execution of a step body whose result was not the one recorded
 *   must have started within one lease before a disruption of its own process (a kill, a freeze)
 *   or around the database restart; any other is double execution by a healthy worker.
 * - disruptions on leased runs: each kill and freeze picks a worker that holds leases at that moment.
 */
class Chaos(private val config: ChaosConfig, private val broken: BrokenVariant? = null) {
    private val dir: File = Files.createTempDirectory("stent-chaos").toFile()
    private val log = File(dir, "bodies.log")
    private val rnd = Random(42)

    /** The pauses between signals: their own generator, since signals go out while [rnd] picks victims. */
    private val signalRnd = Random(43)
    private val disruptions = java.util.Collections.synchronizedList(mutableListOf<Disruption>())

    fun run(store: String): ChaosSummary {
        val pg = if (store == "postgres") RestartablePg().also { it.start() } else null
        try {
            val processArgs = if (pg == null) listOf("sqlite", File(dir, "chaos.db").path) else listOf("postgres", pg.url, "postgres", "", "chaos")
            val open = { BenchStores.openFromArgs(processArgs) }
            return open().use { stent ->
                connect(processArgs).use(::installWriteLog)
                shake(store, stent, processArgs, pg)
            }
        } finally {
            pg?.stop()
            dir.deleteRecursively()
        }
    }

    private fun connect(processArgs: List<String>): Connection =
        if (processArgs[0] == "postgres") DriverManager.getConnection(processArgs[1], processArgs[2], processArgs[3]).also { it.schema = processArgs[4] }
        else DriverManager.getConnection("jdbc:sqlite:${processArgs[1]}")

    private fun startWorker(processArgs: List<String>): Process {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val out = File(dir, "worker-${System.nanoTime()}.out")
        val brokenArg = broken?.let { listOf("-Dstent.chaos.broken=${it.property}") } ?: emptyList()
        val p = ProcessBuilder(
            listOf(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dstent.chaos.log=${log.path}", "-Dstent.bench.leaseMs=${config.leaseMs}") +
                brokenArg + listOf("-cp", System.getProperty("java.class.path"), "dev.stent.bench.BenchMainKt", "worker", "16") + processArgs,
        ).redirectErrorStream(true).redirectOutput(out).start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
        while (!out.readText().contains("READY")) {
            check(p.isAlive && System.nanoTime() < deadline) { "chaos worker did not start:\n${out.readText()}" }
            Thread.sleep(20)
        }
        return p
    }

    /** The pids (worker ids start with `pid@`) that hold an unexpired lease now. */
    private fun pidsHoldingLeases(processArgs: List<String>): Set<String> = try {
        connect(processArgs).use { c ->
            c.createStatement().use { st ->
                st.executeQuery("SELECT DISTINCT lease_owner FROM stent_runs WHERE status = 'RUNNING' AND lease_owner IS NOT NULL").use { rs ->
                    generateSequence { if (rs.next()) rs.getString(1).substringBefore('@') else null }.toSet()
                }
            }
        }
    } catch (e: java.sql.SQLException) {
        emptySet() // the database is restarting
    }

    /** A worker that holds leases (waiting up to 10 s for one to), and whether it does. */
    private suspend fun victim(workers: List<Process>, processArgs: List<String>): Pair<Int, Boolean> {
        repeat(500) {
            val holding = pidsHoldingLeases(processArgs)
            val candidates = workers.indices.filter { workers[it].pid().toString() in holding }
            if (candidates.isNotEmpty()) return candidates[rnd.nextInt(candidates.size)] to true
            delay(20)
        }
        return rnd.nextInt(workers.size) to false
    }

    private fun shake(store: String, stent: Stent, processArgs: List<String>, pg: RestartablePg?): ChaosSummary = runBlocking {
        val workers = MutableList(config.workers) { startWorker(processArgs) }
        val ids = (1..config.runs).map { "c$it" }
        try {
            ids.forEachIndexed { i, id -> stent.client.startByName<Int, String>("chaos", i, id = id) }
            val plan = (List(config.kills) { "kill" } + "freeze" + (if (pg != null) listOf("restart") else emptyList())).shuffled(rnd)
            // the signals go out in one batch before each disruption (and one after the last), so runs are executing,
            // holding leases, whenever a disruption comes
            val batches = ids.shuffled(rnd).chunked((ids.size + plan.size) / (plan.size + 1))
            suspend fun sendSignals(batch: List<String>) {
                for (id in batch) {
                    delay(signalRnd.nextLong(0, 15))
                    retrying { stent.client.signal(id, "go", "now") }
                }
            }
            val shaking = launch(Dispatchers.IO) {
                for ((n, what) in plan.withIndex()) {
                    delay(rnd.nextLong(DISRUPTION_GAP_MS / 2, DISRUPTION_GAP_MS * 3 / 2))
                    // the batch goes out while the victim is chosen, so runs are executing (holding leases) meanwhile,
                    // however fast the runs of the batch finish
                    val sending = batches.getOrNull(n)?.let { batch -> launch { sendSignals(batch) } }
                    when (what) {
                        "kill" -> {
                            val (i, leased) = victim(workers, processArgs)
                            val pid = workers[i].pid().toString()
                            workers[i].destroyForcibly().waitFor()
                            val at = System.currentTimeMillis() // once it is dead (waitFor): nothing it started is later
                            disruptions += Disruption("kill", setOf(pid), at, at, leased)
                            workers[i] = startWorker(processArgs)
                        }
                        "freeze" -> {
                            val (i, leased) = victim(workers, processArgs)
                            val victim = workers[i]
                            posix("STOP", victim)
                            val at = System.currentTimeMillis()
                            delay(config.leaseMs * 2)
                            posix("CONT", victim)
                            val resumed = System.currentTimeMillis()
                            // The frozen process may have been about to start a body when it stopped (it logs the start when it
                            // resumes), so the freeze lasts until it resumes, plus a moment for the signal to take effect. On SQLite
                            // a frozen process may hold the file's write lock, which stalls every writer past its lease: there a
                            // freeze disrupts every process until a lease after it ends.
                            disruptions += if (store == "sqlite") Disruption("freeze", null, at, resumed + config.leaseMs, leased)
                            else Disruption("freeze", setOf(victim.pid().toString()), at, resumed + SIGNAL_SLACK_MS, leased)
                        }
                        "restart" -> {
                            val at = System.currentTimeMillis()
                            pg!!.stop()
                            delay(1500)
                            pg.start()
                            // workers find out through failed calls and dead pooled connections: the restart lasts until they
                            // have had a lease to notice
                            disruptions += Disruption("restart", null, at, System.currentTimeMillis() + config.leaseMs, true)
                        }
                    }
                    sending?.join()
                }
                batches.drop(plan.size).forEach { sendSignals(it) }
            }
            val codec = codecOf<String>()
            val outcomes = coroutineScope {
                ids.map { id -> async { runCatching { stent.client.await(id, codec, config.deadlineMinutes.minutes) }.isSuccess } }.awaitAll()
            }
            shaking.join()
            return@runBlocking summarize(store, stent, ids, outcomes.count { it }, processArgs)
        } finally {
            workers.forEach { it.destroyForcibly().waitFor() }
        }
    }

    private companion object {
        /** The average pause between two disruptions. */
        const val DISRUPTION_GAP_MS = 1_650L

        /** How long a POSIX signal may take to reach every thread of a busy JVM after `kill` returns. */
        const val SIGNAL_SLACK_MS = 100L
    }

    private suspend fun retrying(block: suspend () -> Unit) {
        repeat(100) {
            try {
                return block()
            } catch (e: dev.stent.StentStoreException) {
                delay(200)
            } catch (e: dev.stent.UnknownRunException) {
                return // a signal whose reply a database restart lost committed, and the run finished since
            }
        }
    }

    private fun posix(signal: String, p: Process) {
        ProcessBuilder("kill", "-$signal", p.pid().toString()).start().waitFor()
    }

    private suspend fun summarize(store: String, stent: Stent, ids: List<String>, completed: Int, processArgs: List<String>): ChaosSummary {
        val recorders = HashMap<Pair<String, String>, String>()
        var lost = 0
        for (id in ids) {
            val info = stent.client.describe(id)
            if (info.status != RunStatus.COMPLETED) lost++
            info.records.filter {
                it.kind == dev.stent.RecordKind.STEP && it.status == dev.stent.RecordStatus.COMPLETED
            }.forEach { recorders[id to it.id] = it.result!!.trim('"') }
        }
        val (finalWrites, duplicates) = connect(processArgs).use(::countFinalWrites)
        val bodies = log.readLines().filter { it.startsWith("B ") }.map { it.split(" ") }
        // every body execution but the one whose result was recorded was discarded: each needs a disruption of its own process
        var reExecuted = 0
        var explained = 0
        val unexplainedKeys = mutableListOf<Pair<String, String>>()
        bodies.groupBy { it[1] to it[2] }.forEach { (key, runs) ->
            val recorded = recorders[key]
            for (b in runs) {
                if (b[5] == recorded) continue
                reExecuted++
                if (explainedBy(b[3], b[4].toLong())) explained++
                else if (unexplainedKeys.add(key) && unexplainedKeys.size <= 10) {
                    println("chaos: unexplained re-execution of ${key.first}/${key.second} by pid ${b[3]} at ${b[4]} (recorded: $recorded)")
                }
            }
        }
        if (explained < reExecuted || disruptions.any { !it.hitLeasedRuns }) {
            for (d in disruptions) {
                println("chaos: disruption ${d.kind} of ${d.pids ?: "all"} from ${d.fromMs} to ${d.toMs}, on leased runs: ${d.hitLeasedRuns}")
            }
            // what the workers said about losing runs: the first place to look for the cause
            val unexplainedRuns = unexplainedKeys.map { "run ${it.first}:" }.toSet()
            dir.listFiles { f -> f.name.startsWith("worker-") }.orEmpty().sortedBy { it.name }.forEach { f ->
                f.readLines().filter { line -> "WARN" in line && "dev.stent" in line && (unexplainedRuns.any { it in line } || "run " !in line) }
                    .take(30).forEach { println("chaos: ${f.name}: ${it.take(300)}") }
            }
        }
        val shaken = disruptions.filter { it.kind != "restart" }
        return ChaosSummary(
            store, ids.size, completed, lost, duplicates, finalWrites, reExecuted, explained, reExecuted - explained,
            disruptions.count { it.kind == "kill" }, shaken.size, shaken.count { it.hitLeasedRuns },
        )
    }

    /** A discarded body of [pid] that started at [startedMs] was cut off by a disruption of its own process, if it started within one lease before it. */
    private fun explainedBy(pid: String, startedMs: Long): Boolean = disruptions.any { d ->
        (d.pids == null || pid in d.pids) && startedMs in (d.fromMs - config.leaseMs)..d.toMs
    }

    /**
     * A write log kept by the database itself: a row in `chaos_final_writes` for every insert or update
     * that leaves a record final. The engine never writes a final record twice, so any (run, step) logged
     * twice is a duplicate checkpoint, even though the records table's key keeps one row per (run, step).
     */
    private fun installWriteLog(c: Connection) {
        val statements = if (c.metaData.databaseProductName.contains("PostgreSQL", ignoreCase = true)) listOf(
            "CREATE TABLE chaos_final_writes (run_id TEXT NOT NULL, step_id TEXT NOT NULL, status TEXT NOT NULL)",
            """CREATE FUNCTION chaos_log_final() RETURNS trigger AS ${'$'}${'$'} BEGIN
                 INSERT INTO chaos_final_writes VALUES (NEW.run_id, NEW.step_id, NEW.status); RETURN NULL; END ${'$'}${'$'} LANGUAGE plpgsql""",
            """CREATE TRIGGER chaos_log_final AFTER INSERT OR UPDATE ON stent_records FOR EACH ROW
                 WHEN (NEW.status IN ('COMPLETED', 'FAILED', 'TIMED_OUT')) EXECUTE FUNCTION chaos_log_final()""",
        ) else listOf(
            "CREATE TABLE chaos_final_writes (run_id TEXT NOT NULL, step_id TEXT NOT NULL, status TEXT NOT NULL)",
            """CREATE TRIGGER chaos_log_final_ins AFTER INSERT ON stent_records WHEN NEW.status IN ('COMPLETED', 'FAILED', 'TIMED_OUT')
                 BEGIN INSERT INTO chaos_final_writes VALUES (NEW.run_id, NEW.step_id, NEW.status); END""",
            """CREATE TRIGGER chaos_log_final_upd AFTER UPDATE ON stent_records WHEN NEW.status IN ('COMPLETED', 'FAILED', 'TIMED_OUT')
                 BEGIN INSERT INTO chaos_final_writes VALUES (NEW.run_id, NEW.step_id, NEW.status); END""",
        )
        c.createStatement().use { st -> statements.forEach(st::execute) }
    }

    /** (final writes logged, writes beyond the first per (run, step)). */
    private fun countFinalWrites(c: Connection): Pair<Int, Int> = c.createStatement().use { st ->
        st.executeQuery("SELECT COUNT(*), COUNT(*) - COUNT(DISTINCT run_id || '/' || step_id) FROM chaos_final_writes").use { rs ->
            rs.next()
            rs.getInt(1) to rs.getInt(2)
        }
    }
}
