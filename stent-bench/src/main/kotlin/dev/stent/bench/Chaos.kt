package dev.stent.bench

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.Stents
import dev.stent.awaitSignal
import dev.stent.codecOf
import dev.stent.it.RestartablePg
import dev.stent.startByName
import dev.stent.signal
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
import java.sql.DriverManager
import java.util.concurrent.TimeUnit
import kotlin.random.Random
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

/** The log step bodies append to: `B <runId> <stepId> <pid> <epochMs>` at the start of every body execution. */
private val chaosLog: File? = System.getProperty("stent.chaos.log")?.let(::File)

private fun logBody(runId: String, stepId: String) {
    val f = chaosLog ?: return
    FileOutputStream(f, true).use { it.write("B $runId $stepId ${ProcessHandle.current().pid()} ${System.currentTimeMillis()}\n".toByteArray()) }
}

/** Four steps around a durable sleep and a signal; each step's result names the process that recorded it. */
val chaosWorkflow = workflow<Int, String>("chaos") { i ->
    val pid = { ProcessHandle.current().pid().toString() }
    step("s1") { logBody(runId, stepId); delay(Random.nextLong(5, 40)); pid() }
    sleep((300 + (i % 7) * 200).milliseconds, id = "nap")
    step("s2") { logBody(runId, stepId); delay(Random.nextLong(5, 40)); pid() }
    awaitSignal<String>("go")
    step("s3") { logBody(runId, stepId); delay(Random.nextLong(5, 40)); pid() }
    step("s4") { logBody(runId, stepId); delay(Random.nextLong(5, 40)); pid() }
    "done"
}

/** How hard to shake: worker JVMs, runs, kills, one freeze, one database restart (PostgreSQL). */
class ChaosConfig(val workers: Int, val runs: Int, val kills: Int, val leaseMs: Long, val deadlineMinutes: Int) {
    companion object {
        val QUICK = ChaosConfig(workers = 3, runs = 120, kills = 3, leaseMs = 2000, deadlineMinutes = 4)
        val FULL = ChaosConfig(workers = 4, runs = 1500, kills = 10, leaseMs = 2000, deadlineMinutes = 15)
    }
}

/** The closing line of one store's chaos run. */
class ChaosSummary(
    val store: String, val runs: Int, val completed: Int, val lost: Int, val duplicateCheckpoints: Int,
    val reExecuted: Int, val inFlightAtDisruptions: Int, val unexplained: Int, val kills: Int,
) {
    val ok: Boolean get() = lost == 0 && duplicateCheckpoints == 0 && reExecuted <= inFlightAtDisruptions && unexplained == 0

    override fun toString() =
        "chaos store=$store runs=$runs completed=$completed lost=$lost duplicate_checkpoints=$duplicateCheckpoints " +
            "re_executed_bodies=$reExecuted in_flight_at_disruptions=$inFlightAtDisruptions unexplained=$unexplained kills=$kills " +
            "result=${if (ok) "OK" else "FAIL"}"
}

/** `scripts/chaos [--quick] [--stores=sqlite,postgres]`: prints one line per store; exits 1 if any is not OK. */
fun main(args: Array<String>) {
    val config = if ("--quick" in args) ChaosConfig.QUICK else ChaosConfig.FULL
    val stores = args.firstOrNull { it.startsWith("--stores=") }?.substringAfter("=")?.split(",") ?: listOf("sqlite", "postgres")
    val summaries = stores.map { Chaos(config).run(it) }
    summaries.forEach { println(it) }
    exitProcess(if (summaries.all { it.ok }) 0 else 1)
}

/** One chaos run against one store. */
class Chaos(private val config: ChaosConfig) {
    private val dir: File = Files.createTempDirectory("stent-chaos").toFile()
    private val log = File(dir, "bodies.log")
    private val rnd = Random(42)
    private val killed = mutableSetOf<String>()
    private val frozen = mutableSetOf<String>()
    private var restartWindow: LongRange? = null

    fun run(store: String): ChaosSummary {
        val pg = if (store == "postgres") RestartablePg().also { it.start() } else null
        try {
            val processArgs = if (pg == null) listOf("sqlite", File(dir, "chaos.db").path) else listOf("postgres", pg.url, "postgres", "", "chaos")
            val open = { BenchStores.openFromArgs(processArgs) }
            return open().use { stent -> shake(store, stent, processArgs, pg) }
        } finally {
            pg?.stop()
            dir.deleteRecursively()
        }
    }

    private fun startWorker(processArgs: List<String>): Process {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val out = File(dir, "worker-${System.nanoTime()}.out")
        val p = ProcessBuilder(
            listOf(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dstent.chaos.log=${log.path}", "-Dstent.bench.leaseMs=${config.leaseMs}",
                "-cp", System.getProperty("java.class.path"), "dev.stent.bench.BenchMainKt", "worker", "16") + processArgs,
        ).redirectErrorStream(true).redirectOutput(out).start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
        while (!out.readText().contains("READY")) {
            check(p.isAlive && System.nanoTime() < deadline) { "chaos worker did not start:\n${out.readText()}" }
            Thread.sleep(20)
        }
        return p
    }

    private fun shake(store: String, stent: Stent, processArgs: List<String>, pg: RestartablePg?): ChaosSummary = runBlocking {
        val workers = MutableList(config.workers) { startWorker(processArgs) }
        val ids = (1..config.runs).map { "c$it" }
        try {
            ids.forEachIndexed { i, id -> stent.client.startByName<Int, String>("chaos", i, id = id) }
            val signals = launch(Dispatchers.IO) {
                for (id in ids.shuffled(rnd)) {
                    delay(rnd.nextLong(0, 15))
                    retrying { stent.client.signal(id, "go", "now") }
                }
            }
            val disruptions = launch(Dispatchers.IO) {
                val plan = (List(config.kills) { "kill" } + "freeze" + (if (pg != null) listOf("restart") else emptyList())).shuffled(rnd)
                for (what in plan) {
                    delay(rnd.nextLong(800, 2500))
                    when (what) {
                        "kill" -> {
                            val i = rnd.nextInt(workers.size)
                            killed += workers[i].pid().toString()
                            workers[i].destroyForcibly().waitFor()
                            workers[i] = startWorker(processArgs)
                        }
                        "freeze" -> {
                            val victim = workers[rnd.nextInt(workers.size)]
                            frozen += victim.pid().toString()
                            posix("STOP", victim)
                            delay(config.leaseMs * 2)
                            posix("CONT", victim)
                        }
                        "restart" -> {
                            val start = System.currentTimeMillis()
                            pg!!.stop()
                            delay(1500)
                            pg.start()
                            restartWindow = (start - 1000)..(System.currentTimeMillis() + config.leaseMs * 3 + 5000)
                        }
                    }
                }
            }
            val codec = codecOf<String>()
            val outcomes = coroutineScope {
                ids.map { id -> async { runCatching { stent.client.await(id, codec, config.deadlineMinutes.minutes) }.isSuccess } }.awaitAll()
            }
            signals.join()
            disruptions.join()
            return@runBlocking summarize(store, stent, ids, outcomes.count { it }, pg)
        } finally {
            workers.forEach { it.destroyForcibly().waitFor() }
        }
    }

    private suspend fun retrying(block: suspend () -> Unit) {
        repeat(100) {
            try {
                return block()
            } catch (e: dev.stent.StentStoreException) {
                delay(200)
            }
        }
    }

    private fun posix(signal: String, p: Process) {
        ProcessBuilder("kill", "-$signal", p.pid().toString()).start().waitFor()
    }

    private suspend fun summarize(store: String, stent: Stent, ids: List<String>, completed: Int, pg: RestartablePg?): ChaosSummary {
        val recorders = HashMap<Pair<String, String>, String>()
        var lost = 0
        for (id in ids) {
            val info = stent.client.describe(id)
            if (info.status != RunStatus.COMPLETED) lost++
            info.steps.filter { it.kind == "STEP" }.forEach { recorders[id to it.id] = it.result!!.trim('"') }
        }
        val duplicates = duplicateRows(store, pg)
        val bodies = log.readLines().filter { it.startsWith("B ") }.map { it.split(" ") }
        // every body execution but the one whose result was recorded was discarded: count them and check each has a cause
        var reExecuted = 0
        var inFlight = 0
        var unexplained = 0
        bodies.groupBy { it[1] to it[2] }.forEach { (key, runs) ->
            val recorder = recorders[key]
            var recordedSeen = false
            for (b in runs) {
                if (!recordedSeen && b[3] == recorder) { recordedSeen = true; continue }
                reExecuted++
                val pid = b[3]
                val at = b[4].toLong()
                if (pid in killed || pid in frozen || restartWindow?.contains(at) == true) inFlight++ else unexplained++
            }
        }
        return ChaosSummary(store, ids.size, completed, lost, duplicates, reExecuted, inFlight, unexplained, killed.size)
    }

    /** Rows of stent_steps sharing a (run, step) key: zero unless a checkpoint was written twice. */
    private fun duplicateRows(store: String, pg: RestartablePg?): Int {
        val sql = "SELECT COUNT(*) - COUNT(DISTINCT run_id || '/' || step_id) FROM stent_steps"
        val conn = if (pg != null) DriverManager.getConnection(pg.url, "postgres", "").also { it.schema = "chaos" }
        else DriverManager.getConnection("jdbc:sqlite:${File(dir, "chaos.db").path}")
        return conn.use { c -> c.createStatement().executeQuery(sql).use { rs -> rs.next(); rs.getInt(1) } }
    }
}
