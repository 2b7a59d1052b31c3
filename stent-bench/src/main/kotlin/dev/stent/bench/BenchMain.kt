package dev.stent.bench

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentWorker
import dev.stent.WorkflowDefinition
import dev.stent.codecOf
import dev.stent.queueLimits
import dev.stent.signal
import dev.stent.startByName
import dev.stent.stentWorker
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import java.io.File
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

/** Sizes of one bench run; `--quick` keeps the whole run under two minutes. */
class Sizes(quick: Boolean) {
    val raw = if (quick) 500 else 3000
    val steps = System.getProperty("stent.bench.steps")?.toInt() ?: 500
    val throughput = if (quick) 1000 else 5000
    val latencyStarts = if (quick) 100 else 500
    val replaySteps = if (quick) 2000 else 10_000
    val waitingRuns = if (quick) 2000 else 100_000
    val spreadTimers = if (quick) 50 else 200
    val mapChildren = 1000
    val dashboardRuns = if (quick) 20_000 else 100_000
    val backlog = if (quick) 20_000 else 100_000
    val sleepingMillion = if (quick) 100_000 else 1_000_000
    val suspending = if (quick) 1_000 else 5_000
    val blocking = if (quick) 100 else 500
}

/** Prints and keeps one JSON line per result. */
class Results {
    val all = mutableListOf<JsonObject>()

    /** The round (see `--rounds`) the results emitted now belong to. */
    var round = 1
    fun emit(result: JsonObject) {
        val o = JsonObject(result + ("round" to JsonPrimitive(round)))
        all += o
        println(o)
        System.out.flush()
    }
}

fun main(args: Array<String>) {
    if (args.firstOrNull() == "worker") return workerMain(args.drop(1))
    if (args.firstOrNull() == "report") {
        // `report <results.jsonl>…`: one chart and ratio set over the results of several runs
        val lines = args.drop(1).flatMap { File(it).readLines() }.filter { it.startsWith("{") }
        val all = lines.map { kotlinx.serialization.json.Json.parseToJsonElement(it) as JsonObject }.filter { it.str("engine") != null }
        return Report(all, quick = false).writeAll()
    }
    val quick = "--quick" in args
    val only = args.firstOrNull { it.startsWith("--only=") }?.substringAfter("=")?.split(",")?.toSet()
    val stores = args.firstOrNull { it.startsWith("--stores=") }?.substringAfter("=")?.split(",") ?: listOf("sqlite", "postgres")
    val withDbos = "--no-dbos" !in args
    // --rounds=N runs every scenario N times, Stent and DBOS in turn (A, B, A, B, …): the report gives each ratio's median and spread
    val rounds = args.firstOrNull { it.startsWith("--rounds=") }?.substringAfter("=")?.toInt() ?: 1
    val sizes = Sizes(quick)
    val results = Results()
    BenchStores(System.getenv("STENT_BENCH_PG_URL"), pgStatements = "--pg-statements" in args).use { benchStores ->
        val scenarios = Scenarios(benchStores, sizes, results)
        repeat(rounds) { round ->
            results.round = round + 1
            runRound(scenarios, benchStores, stores, only, withDbos)
        }
        Report(results.all, quick).writeAll()
    }
}

/** One round: every scenario asked for on every store, then DBOS's on the same PostgreSQL. */
private fun runRound(scenarios: Scenarios, benchStores: BenchStores, stores: List<String>, only: Set<String>?, withDbos: Boolean) {
    run {
        for (store in stores) {
            val db = { if (store == "sqlite") benchStores.sqlite() else benchStores.postgres() }
            fun run(name: String, block: () -> Unit) {
                if (only == null || name in only) block()
            }
            run("raw_commit") { scenarios.rawCommit(db()) }
            run("raw_insert") { scenarios.rawInsert(db()) }
            run("step_overhead") { scenarios.stepOverhead(db()) }
            run("checkpoint_direct") { scenarios.checkpointDirect(db()) }
            // 0: the worker in the starting JVM (as DBOS runs); 1 and 2: worker JVMs apart from the one that starts
            run("throughput_1step") { for (workers in 0..2) scenarios.throughput(db, workers = workers) }
            // the claim of a queue with limits above the offered load against one without, interleaved A, B, A, B
            run("throughput_limited") {
                repeat(2) { for (limits in listOf("none", "concurrency", "all")) scenarios.throughput(db, workers = 1, limits = limits) }
            }
            run("fanout") { scenarios.fanout(db()) }
            run("map_fanout") { scenarios.mapFanout(db, workers = 1); scenarios.mapFanout(db, workers = 2) }
            run("map_memory") { scenarios.mapMemory(db()) }
            run("start_latency") { scenarios.startLatency(db()) }
            run("replay") { scenarios.replay(db()) }
            run("waiting_runs") { scenarios.waitingRuns(db()) }
            run("dashboard") { scenarios.dashboard(db()) }
            run("backlog") { scenarios.backlog(db()) }
            run("sleeping_million") { scenarios.sleepingMillion(db()) }
            run("in_flight") { scenarios.inFlight(db()) }
        }
        if (withDbos && "postgres" in stores) {
            for (name in listOf("step_overhead", "throughput_1step", "fanout", "start_latency", "map_fanout")) {
                if (only == null || name in only) scenarios.dbos(name)
            }
        }
    }
}

/** A worker JVM for the throughput scenario: `worker <concurrency> <store args…>`; prints READY, runs until killed. */
private fun workerMain(args: List<String>) {
    val broken = System.getProperty("stent.chaos.broken")?.let { b -> BrokenVariant.entries.single { it.property == b } }
    val stent = if (broken != null) openBroken(broken, args.drop(1)) else BenchStores.openFromArgs(args.drop(1))
    val worker = stentWorker(stent) {
        allBenchWorkflows.forEach { register(it) }
        register(chaosWorkflow)
        concurrency = args[0].toInt()
        leaseDuration = (System.getProperty("stent.bench.leaseMs")?.toLong() ?: 30_000L).milliseconds
        unloadThreshold = 200.milliseconds
        pollInterval = 100.milliseconds
    }
    Runtime.getRuntime().addShutdownHook(Thread { worker.close(); stent.close() })
    println("READY")
    System.out.flush()
    Thread.sleep(Long.MAX_VALUE)
}

/** Runs [block] with [count] bench worker JVMs of 64 slots; then stops them (SIGTERM first, so a worker can write its JFR recording on exit). */
fun <T> withWorkerJvms(db: BenchDb, count: Int, block: (List<Process>) -> T): T {
    val jvms = List(count) { startWorkerJvm(db, 64) }
    try {
        return block(jvms)
    } finally {
        jvms.forEach { it.destroy() }
        jvms.forEach { if (!it.waitFor(10, TimeUnit.SECONDS)) it.destroyForcibly().waitFor() }
    }
}

/** Starts a bench worker JVM on the bench classpath and waits for READY. */
fun startWorkerJvm(db: BenchDb, concurrency: Int, vararg javaArgs: String): Process {
    val java = File(System.getProperty("java.home"), "bin/java").path
    val cp = System.getProperty("java.class.path")
    val out = File.createTempFile("bench-worker", ".out")
    // STENT_BENCH_WORKER_JAVA_OPTS adds JVM options to every worker, e.g. to record a JFR profile
    val extra = System.getenv("STENT_BENCH_WORKER_JAVA_OPTS")?.split(' ')?.filter { it.isNotBlank() }.orEmpty()
    val p = ProcessBuilder(listOf(java) + extra + javaArgs + listOf("-cp", cp, "dev.stent.bench.BenchMainKt", "worker", "$concurrency") + db.processArgs)
        .redirectErrorStream(true).redirectOutput(out).start()
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
    while (!out.readText().contains("READY")) {
        check(p.isAlive && System.nanoTime() < deadline) { "bench worker did not start:\n${out.readText()}" }
        Thread.sleep(20)
    }
    return p
}

/** The scenarios; each opens a fresh database and emits one or more results. */
class Scenarios(private val stores: BenchStores, private val sizes: Sizes, private val results: Results) {
    /** µs per raw commit, per store, for the step_overhead ratio (two round trips: the old floor, kept for history). */
    private val rawUs = HashMap<String, Double>()

    /** µs per one-statement write shaped like a checkpoint, per store: the floor a step's cost is measured against. */
    private val floorUs = HashMap<String, Double>()

    /**
     * The one-statement floor: an autocommit INSERT of one row shaped like a checkpoint (run, step,
     * kind, status, result, attempts, times) into a table keyed like `stent_records`: one round trip
     * and one durable commit, as a checkpoint is. `raw_commit` (INSERT, then COMMIT) costs two.
     */
    fun rawInsert(db: BenchDb) {
        db.raw().use { c ->
            c.createStatement().use {
                it.execute(
                    """CREATE TABLE IF NOT EXISTS raw_records (run_id VARCHAR(200) NOT NULL, step_id VARCHAR(400) NOT NULL,
                       kind VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, result TEXT NULL, attempts INT NOT NULL,
                       created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (run_id, step_id))""",
                )
            }
            c.autoCommit = true
            c.prepareStatement("INSERT INTO raw_records VALUES (?, ?, 'STEP', 'COMPLETED', ?, 1, ?, ?)").use { ps ->
                fun insert(i: Int) {
                    val now = System.currentTimeMillis()
                    ps.setString(1, "raw-run")
                    ps.setString(2, "step-$i")
                    ps.setString(3, "{\"ok\":true}")
                    ps.setLong(4, now)
                    ps.setLong(5, now)
                    ps.executeUpdate()
                }
                floorUs[db.store] = timeWrites("raw_insert", "us_per_insert", db, ::insert)
            }
        }
    }

    fun rawCommit(db: BenchDb) {
        db.raw().use { c ->
            c.createStatement().use { it.execute("CREATE TABLE IF NOT EXISTS raw_bench (id BIGINT PRIMARY KEY, v TEXT)") }
            c.autoCommit = false
            c.prepareStatement("INSERT INTO raw_bench (id, v) VALUES (?, ?)").use { ps ->
                fun insert(i: Int) { ps.setLong(1, i.toLong()); ps.setString(2, "x"); ps.executeUpdate(); c.commit() }
                rawUs[db.store] = timeWrites("raw_commit", "us_per_commit", db, ::insert)
            }
        }
    }

    /** Times [write] of rows 0 until `sizes.raw` after 100 warm-up rows (negative ids), emits [name] with µs per write as [unit], and returns it. */
    private fun timeWrites(name: String, unit: String, db: BenchDb, write: (Int) -> Unit): Double {
        repeat(100) { write(-1 - it) } // warm-up
        val t0 = System.nanoTime()
        repeat(sizes.raw) { write(it) }
        val wall = (System.nanoTime() - t0) / 1e9
        val us = wall * 1e6 / sizes.raw
        results.emit(result(name, db.store, sizes.raw, wall) { put(unit, us) })
        return us
    }

    fun stepOverhead(db: BenchDb) = db.open().use { stent ->
        inProcessWorker(stent, 4).use {
            runBlocking {
                stent.client.start(noopSteps, sizes.steps).await(1.minutes) // warm-up (JIT)
                // median of three runs: one run of 500 steps is short enough for a GC or a scheduler hiccup to skew it
                val us = List(3) {
                    Probes.reset()
                    stent.client.start(noopSteps, sizes.steps).await(5.minutes)
                    (Probes.lastStep.get() - Probes.firstStep.get()) / 1e3 / (sizes.steps - 1)
                }.sorted()[1]
                results.emit(
                    result("step_overhead", db.store, sizes.steps, us * sizes.steps / 1e6) {
                        put("us_per_step", us)
                        rawUs[db.store]?.let { put("ratio_to_raw", us / it) }
                        floorUs[db.store]?.let { put("ratio_to_floor", us / it) }
                    },
                )
            }
        }
    }

    /** The store's checkpoint called in a loop on one thread: the step cost without the engine around it. */
    @OptIn(dev.stent.InternalStentApi::class)
    fun checkpointDirect(db: BenchDb) = db.open().use { stent ->
        val store = stent.store
        store.createRun(dev.stent.store.NewRun("direct", "bench-steps", "1", "default", 0, 0))
        val run = store.claim(dev.stent.store.ClaimRequest("bench", listOf("bench-steps"), emptyList(), 1, 600_000)).runs.single()
        fun write(i: Int) = store.checkpoint(
            "direct",
            run.fencingToken,
            dev.stent.store.StoredRecord("s$i", dev.stent.RecordKind.STEP, dev.stent.RecordStatus.COMPLETED, result = "1", attempts = 1),
        )
        repeat(100) { write(-1 - it) }
        val t0 = System.nanoTime()
        repeat(sizes.steps) { write(it) }
        val wall = (System.nanoTime() - t0) / 1e9
        val us = wall * 1e6 / sizes.steps
        results.emit(
            result("checkpoint_direct", db.store, sizes.steps, wall) {
                put("us_per_checkpoint", us)
                rawUs[db.store]?.let { put("ratio_to_raw", us / it) }
                floorUs[db.store]?.let { put("ratio_to_floor", us / it) }
            },
        )
    }

    /**
     * [workers]: worker JVMs apart from this one, or 0 for a worker of 64 slots in this JVM, which takes the runs
     * this JVM starts as it creates them (no claim round trip), as DBOS runs the workflows a process starts.
     * [limits]: null for the plain scenario; else "none" (a queue without limits), "concurrency" (a concurrency limit)
     * or "all" (concurrency, per key and rate limits), each far above what the workers can run, so the claim takes
     * the limited path and counts, and nothing is held back.
     */
    fun throughput(newDb: () -> BenchDb, workers: Int, limits: String? = null) {
        val db = newDb()
        val queue = if (limits == null || limits == "none") WorkflowDefinition.DEFAULT_QUEUE else "bench-limited"
        db.open().use { stent ->
            if (queue != WorkflowDefinition.DEFAULT_QUEUE) {
                runBlocking {
                    stent.client.setQueueLimits(
                        queueLimits(queue) {
                            concurrency = 100_000
                            if (limits == "all") {
                                concurrencyPerKey = 100_000
                                rateLimit(1_000_000, 1.seconds)
                            }
                        },
                    )
                }
            }
            val local = if (workers == 0) inProcessWorker(stent, 64) else null
            // with the worker here: how many runs came through a claim statement rather than their start
            val viaClaims = java.util.concurrent.atomic.AtomicLong()
            val counting = stent.addListener { e -> if (e is dev.stent.StentEvent.ClaimBatch) viaClaims.addAndGet(e.size.toLong()) }
            withWorkerJvms(db, workers) { jvms ->
                runBlocking {
                    // 16 coroutines start runs at once, as a service receiving requests would, then all are awaited
                    suspend fun startAndAwait(args: IntRange): Double {
                        val t0 = System.nanoTime()
                        val ids = args.chunked(args.count() / 16 + 1).map { chunk ->
                            async { chunk.map { stent.client.startByName<Int, Int>("bench-one", it, queue = queue).id } }
                        }.awaitAll().flatten()
                        val started = (System.nanoTime() - t0) / 1e9
                        val codec = codecOf<Int>()
                        coroutineScope { ids.map { async { stent.client.await(it, codec, 10.minutes) } }.awaitAll() }
                        return started
                    }
                    // a warm-up batch as large as the measured one through the same path (JIT in every JVM), as the DBOS harness does
                    val warm = sizes.throughput
                    startAndAwait(-warm..-1)
                    stores.resetPgStatements()
                    viaClaims.set(0)
                    val cpu = CpuMeter(jvms.map { it.pid() })
                    val walBefore = db.walBytes()
                    val t0 = System.nanoTime()
                    val started = startAndAwait(1..sizes.throughput)
                    val wall = (System.nanoTime() - t0) / 1e9
                    val cpuS = cpu.elapsed()
                    val wal = walBefore?.let { db.walBytes()!! - it }
                    val name = if (limits == null) "throughput_1step" else "throughput_limited"
                    stores.pgStatementsReport("$name, $workers worker JVM(s), ${sizes.throughput} runs")?.let(System.err::print)
                    results.emit(
                        result(name, db.store, sizes.throughput, wall) {
                            put("workers", workers)
                            limits?.let { put("limits", it) }
                            put("start_phase_s", started)
                            put("warm_up", warm)
                            if (local != null) put("claimed_by_claim_statement", viaClaims.get())
                            // what the server wrote to its write-ahead log per workflow (PostgreSQL; the whole server)
                            wal?.let { put("wal_bytes_per_run", it.toDouble() / sizes.throughput) }
                            // where the CPU went: µs of CPU per workflow in each process group
                            for ((group, s) in cpuS) put("cpu_us_per_run_$group", s * 1e6 / sizes.throughput)
                        },
                    )
                }
            }
            local?.close()
            counting.close()
        }
    }

    /** One parent maps [oneStep] over 1,000 inputs as child runs, on [workers] worker JVMs; after a warm-up map of the same size. */
    fun mapFanout(newDb: () -> BenchDb, workers: Int) {
        val db = newDb()
        db.open().use { stent ->
            withWorkerJvms(db, workers) { jvms ->
                runBlocking {
                    val n = sizes.mapChildren
                    stent.client.startByName<Int, Long>("bench-map", n, id = "warm").await(10.minutes)
                    val cpu = CpuMeter(jvms.map { it.pid() })
                    val t0 = System.nanoTime()
                    val sum = stent.client.startByName<Int, Long>("bench-map", n, id = "measured").await(10.minutes)
                    val wall = (System.nanoTime() - t0) / 1e9
                    check(sum == n.toLong() * (n - 1) / 2) { "map_fanout: sum $sum" }
                    val cpuS = cpu.elapsed()
                    results.emit(
                        result("map_fanout", db.store, n, wall) {
                            put("workers", workers)
                            for ((group, s) in cpuS) put("cpu_us_per_child_$group", s * 1e6 / n)
                        },
                    )
                }
            }
        }
    }

    /**
     * The heap of a JVM whose worker runs one parent mapping over 10,000 children (and the children),
     * after a GC when 10%, 50% and 90% of the children finished: flat when the parent holds no
     * coroutine or record object per child in flight.
     */
    fun mapMemory(db: BenchDb) = db.open().use { stent ->
        inProcessWorker(stent, 64, unloadThreshold = 200.milliseconds).use {
            runBlocking {
                val n = 10_000
                Probes.mapChildrenDone.set(0)
                val t0 = System.nanoTime()
                val run = stent.client.start(mapCounted, n, id = "memory")
                val heapAt = listOf(10, 50, 90).associateWith { pct ->
                    while (Probes.mapChildrenDone.get() < n * pct / 100L) delay(20.milliseconds)
                    usedHeapAfterGc()
                }
                run.await(30.minutes)
                val wall = (System.nanoTime() - t0) / 1e9
                results.emit(
                    result("map_memory", db.store, n, wall) {
                        for ((pct, bytes) in heapAt) put("heap_mb_at_${pct}pct", bytes / 1e6)
                    },
                )
            }
        }
    }

    fun fanout(db: BenchDb) = db.open().use { stent ->
        inProcessWorker(stent, 32).use {
            runBlocking {
                val t0 = System.nanoTime()
                val runs = (1..20).map { stent.client.start(noopSteps, 50) }
                runs.forEach { it.await(5.minutes) }
                val wall = (System.nanoTime() - t0) / 1e9
                results.emit(result("fanout", db.store, 1000, wall) { put("workflows", 20); put("steps_each", 50) })
            }
        }
    }

    fun startLatency(db: BenchDb) = db.open().use { stent ->
        inProcessWorker(stent, 8).use {
            runBlocking {
                // how long start() itself took, apart from the time to the first step
                val startCallMs = ArrayList<Double>()
                suspend fun once(): Double {
                    delay(5.milliseconds) // the worker is idle between starts
                    val t0 = System.nanoTime()
                    val run = stent.client.start(latency, "x")
                    startCallMs += (System.nanoTime() - t0) / 1e6
                    run.await(1.minutes)
                    return (Probes.firstStepAt.getValue(run.id) - t0) / 1e6
                }
                repeat(20) { once() }
                startCallMs.clear()
                val t0 = System.nanoTime()
                val ms = List(sizes.latencyStarts) { once() }.sorted()
                val wall = (System.nanoTime() - t0) / 1e9
                results.emit(
                    result("start_latency", db.store, sizes.latencyStarts, wall) {
                        put("p50_ms", percentile(ms, 0.50))
                        put("p99_ms", percentile(ms, 0.99))
                        put("start_call_p50_ms", percentile(startCallMs.sorted(), 0.50))
                    },
                )
            }
        }
    }

    fun replay(db: BenchDb) = db.open().use { stent ->
        runBlocking {
            val n = sizes.replaySteps
            inProcessWorker(stent, 4, unloadThreshold = 10.milliseconds).use {
                val run = stent.client.start(replay, n, id = "replay")
                while (stent.client.describe("replay").status != RunStatus.WAITING) delay(50.milliseconds)
                Probes.reset()
                val t0 = System.nanoTime()
                stent.client.signal("replay", "go", "now")
                run.await(5.minutes)
                val wall = (Probes.afterReplay.get() - t0) / 1e9
                results.emit(result("replay", db.store, n, wall) { put("ms_to_next_step", wall * 1e3) })
            }
        }
    }

    /**
     * The dashboard over a large store: each page's median time (7 requests after 2 to warm up) through
     * the real HTTP server, the list's first page, a filtered one, one from the middle of the store
     * (cursor paging), and a run's page.
     */
    @OptIn(dev.stent.InternalStentApi::class)
    fun dashboard(db: BenchDb) = db.open().use { stent ->
        val n = sizes.dashboardRuns
        val loadS = loadRuns(stent, n) { b, i -> dev.stent.store.NewRun("d-$b-$i", "wf-${i % 5}", "{}", "q-${i % 3}", 0, 0) }
        dev.stent.dashboard.StentDashboard.start(stent, 0).use { d ->
            val http = java.net.http.HttpClient.newHttpClient()
            fun pageMs(path: String): Double {
                val times = (1..9).map {
                    val t = System.nanoTime()
                    val request = java.net.http.HttpRequest.newBuilder(java.net.URI(d.url + path)).build()
                    val r = http.send(request, java.net.http.HttpResponse.BodyHandlers.ofString())
                    check(r.statusCode() == 200) { "GET $path: ${r.statusCode()}" }
                    (System.nanoTime() - t) / 1e6
                }.drop(2).sorted()
                return times[times.size / 2]
            }
            val mid = runBlocking { stent.client.list(limit = 1, offset = n / 2).single() }
            val cursor = java.net.URLEncoder.encode("${mid.createdAt.toEpochMilli()}_${mid.id}", Charsets.UTF_8)
            results.emit(
                result("dashboard", db.store, n, loadS) {
                    put("list_ms", pageMs(""))
                    put("list_fragment_ms", pageMs("fragment/runs"))
                    put("list_by_workflow_ms", pageMs("?workflow=wf-3"))
                    put("list_failed_none_ms", pageMs("?status=FAILED"))
                    put("list_middle_page_ms", pageMs("?before=$cursor"))
                    put("run_page_ms", pageMs("runs/${mid.id}"))
                    put("stats_ms", runBlocking { (1..5).map { val t = System.nanoTime(); stent.client.stats(); (System.nanoTime() - t) / 1e6 }.sorted()[2] })
                },
            )
        }
    }

    fun waitingRuns(db: BenchDb) = db.open().use { stent ->
        runBlocking {
            val n = sizes.waitingRuns
            val tenth = n / 10
            Probes.reset()
            inProcessWorker(stent, 64, unloadThreshold = 1.seconds).use { worker ->
                // calibrate: how fast can runs be started and unloaded here? Every run then sleeps until one
                // instant far enough ahead for all of them to be started and unloaded first
                val calStart = System.currentTimeMillis()
                startSleepers(stent, tenth, System.currentTimeMillis() + 3_650L * 86_400_000L) // these never wake during the bench
                val heapAtTenth = waitAllUnloaded(db, worker, tenth)
                val perRunMs = (System.currentTimeMillis() - calStart).toDouble() / tenth
                val setupStart = System.currentTimeMillis()
                val dueMs = setupStart + (perRunMs * n * 1.5).toLong() + 5_000
                startSleepers(stent, n, dueMs)
                val heapAtAll = waitAllUnloaded(db, worker, n + tenth)
                val settled = System.currentTimeMillis()
                while (Probes.timerLagMs.size < n && System.currentTimeMillis() < dueMs + 15.minutes.inWholeMilliseconds) delay(100.milliseconds)
                val lags = Probes.timerLagMs.map { it.toDouble() }.sorted()
                val wall = (System.currentTimeMillis() - setupStart) / 1e3
                // Timer precision: the burst above measures how fast due runs drain. Here timers fall due one at a
                // time, every 50 ms, each run unloaded first, while the calibration runs go on sleeping in the table.
                Probes.timerLagMs.clear()
                val m = sizes.spreadTimers
                val base = System.currentTimeMillis() + 5_000
                coroutineScope { (0 until m).map { i -> async { stent.client.start(sleeper, base + i * 50L) } }.awaitAll() }
                while (Probes.timerLagMs.size < m && System.currentTimeMillis() < base + m * 50L + 60_000) delay(100.milliseconds)
                val spread = Probes.timerLagMs.map { it.toDouble() }.sorted()
                results.emit(
                    result("waiting_runs", db.store, n, wall) {
                        put("heap_mb_at_10pct", heapAtTenth / 1e6)
                        put("heap_mb_at_all", heapAtAll / 1e6)
                        put("sleeping_at_all", n + tenth)
                        put("db_mb", db.sizeBytes() / 1e6)
                        put("all_waiting_before_due", settled < dueMs)
                        put("fired", lags.size)
                        put("lag_p50_ms", percentile(lags, 0.5))
                        put("lag_p99_ms", percentile(lags, 0.99))
                        put("lag_max_ms", lags.lastOrNull() ?: -1.0)
                        put("spread_timers", m)
                        put("spread_fired", spread.size)
                        put("spread_lag_p50_ms", percentile(spread, 0.5))
                        put("spread_lag_p99_ms", percentile(spread, 0.99))
                        put("spread_lag_max_ms", spread.lastOrNull() ?: -1.0)
                    },
                )
            }
        }
    }

    /**
     * A backlog of PENDING one-step runs (100,000; quick 20,000) drained by 4 worker JVMs of 64 slots: runs per
     * second, and the claim's plan with the whole backlog in place (it must walk an index and stop at its limit,
     * never sort the backlog or read the table whole). The runs are loaded in groups of 1,000 due in an hour, and
     * made ready by one statement once every worker is up, so all four start on a full backlog.
     */
    @OptIn(dev.stent.InternalStentApi::class)
    fun backlog(db: BenchDb) = db.open().use { stent ->
        val n = sizes.backlog
        val loadS = loadRuns(stent, n) { b, i -> dev.stent.store.NewRun("b-$b-$i", "bench-one", "$i", "default", 0, 3_600_000) }
        db.analyze()
        withWorkerJvms(db, 4) { jvms ->
            val cpu = CpuMeter(jvms.map { it.pid() })
            val t0 = System.nanoTime()
            db.raw().use { c ->
                val now = System.currentTimeMillis() - 1
                c.createStatement().use { it.executeUpdate("UPDATE stent_runs SET ready_at = $now WHERE workflow_name = 'bench-one'") }
            }
            val plan = dev.stent.exposed.Stents.explainClaim(stent, dev.stent.store.ClaimRequest("explain", listOf("bench-one"), emptyList(), 64, 30_000))
            db.raw().use { c ->
                while (true) {
                    val done = c.createStatement().executeQuery("SELECT COUNT(*) FROM stent_runs WHERE status = 'COMPLETED'")
                        .use { rs -> rs.next(); rs.getLong(1) }
                    if (done >= n) break
                    check(System.nanoTime() - t0 < 20.minutes.inWholeNanoseconds) { "backlog: $done of $n done after 20 minutes" }
                    Thread.sleep(50)
                }
            }
            val wall = (System.nanoTime() - t0) / 1e9
            val cpuS = cpu.elapsed()
            System.err.println("backlog (${db.store}, $n PENDING): the claim's plan\n$plan")
            results.emit(
                result("backlog", db.store, n, wall) {
                    put("workers", 4)
                    put("load_s", loadS)
                    // a whole-table read: PostgreSQL's Seq Scan, SQLite's SCAN of the table itself
                    put("claim_plan_reads_table", plan.lines().any { it.contains("Seq Scan on stent_runs") || it.trim() == "SCAN stent_runs" })
                    put("claim_plan", plan.lines().joinToString(" | ") { it.trim() })
                    for ((group, s) in cpuS) put("cpu_us_per_run_$group", s * 1e6 / n)
                },
            )
        }
    }

    /**
     * A million runs asleep (quick: 100,000): delayed starts due in ten years, loaded in groups of 1,000 (a
     * sleeping run and a delayed one are the same to the claim: a row with `ready_at` in the future). With them in
     * place a worker serves 200 real sleepers due 50 ms apart: the claim's latency (p50/p99, from its events), the
     * timers' lag, the worker's heap before and after, and the table's and indexes' size per run.
     */
    @OptIn(dev.stent.InternalStentApi::class)
    fun sleepingMillion(db: BenchDb) = db.open().use { stent ->
        val n = sizes.sleepingMillion
        val far = 3_650L * 86_400_000L
        val loadS = loadRuns(stent, n) { b, i -> dev.stent.store.NewRun("z-$b-$i", "bench-sleeper", "0", "default", 0, far) }
        db.analyze()
        val claimMs = java.util.concurrent.ConcurrentLinkedQueue<Double>()
        val listening = stent.addListener { e -> if (e is dev.stent.StentEvent.ClaimBatch) claimMs += e.durationNanos / 1e6 }
        runBlocking {
            val heapBefore = usedHeapAfterGc()
            inProcessWorker(stent, 64, unloadThreshold = 1.seconds).use {
                Probes.timerLagMs.clear()
                val m = sizes.spreadTimers.coerceAtLeast(200)
                val base = System.currentTimeMillis() + 5_000
                coroutineScope { (0 until m).map { i -> async { stent.client.start(sleeper, base + i * 50L) } }.awaitAll() }
                while (Probes.timerLagMs.size < m && System.currentTimeMillis() < base + m * 50L + 60_000) delay(100.milliseconds)
                val lags = Probes.timerLagMs.map { it.toDouble() }.sorted()
                val claims = claimMs.toList().sorted()
                val heapAfter = usedHeapAfterGc()
                val (tableBytes, indexBytes) = db.tableAndIndexBytes("stent_runs")
                results.emit(
                    result("sleeping_million", db.store, n, loadS) {
                        put("load_s", loadS)
                        put("heap_mb_before", heapBefore / 1e6)
                        put("heap_mb_after", heapAfter / 1e6)
                        put("timers", m)
                        put("fired", lags.size)
                        put("lag_p50_ms", percentile(lags, 0.5))
                        put("lag_p99_ms", percentile(lags, 0.99))
                        put("claims", claims.size)
                        put("claim_p50_ms", percentile(claims, 0.5))
                        put("claim_p99_ms", percentile(claims, 0.99))
                        if (tableBytes != null) put("runs_table_bytes_per_run", tableBytes.toDouble() / n)
                        if (indexBytes != null) put("runs_index_bytes_per_run", indexBytes.toDouble() / n)
                    },
                )
            }
        }
        listening.close()
    }

    /**
     * Runs executing at once in one worker (in this JVM): 5,000 whose step suspends for a second (quick: 1,000) and
     * 500 whose step blocks its thread for a second (quick: 100), all started together. Throughput, the most threads
     * the JVM had, and its heap.
     */
    fun inFlight(db: BenchDb) = db.open().use { stent ->
        val suspending = sizes.suspending
        val blocking = sizes.blocking
        val total = suspending + blocking
        val threads = java.lang.management.ManagementFactory.getThreadMXBean()
        stentWorker(stent) {
            allBenchWorkflows.forEach { register(it) }
            concurrency = total
            maxParallelSteps = total
        }.use {
            runBlocking {
                // warm-up: a few of each
                coroutineScope {
                    (1..20).map { async { stent.client.start(if (it % 2 == 0) suspendingStep else blockingStep, 10L).await(1.minutes) } }.awaitAll()
                }
                threads.resetPeakThreadCount()
                val threadsBefore = threads.threadCount
                val heapBefore = usedHeapAfterGc()
                val t0 = System.nanoTime()
                val runs = coroutineScope {
                    (0 until total).chunked(total / 16 + 1).map { chunk ->
                        async { chunk.map { i -> stent.client.start(if (i < suspending) suspendingStep else blockingStep, 1_000L) } }
                    }.awaitAll().flatten()
                }
                val started = (System.nanoTime() - t0) / 1e9
                var heapPeak = 0L
                coroutineScope {
                    val watch = launch {
                        while (true) {
                            val rt = Runtime.getRuntime()
                            heapPeak = maxOf(heapPeak, rt.totalMemory() - rt.freeMemory())
                            delay(50.milliseconds)
                        }
                    }
                    runs.map { async { it.await(10.minutes) } }.awaitAll()
                    watch.cancel()
                }
                val wall = (System.nanoTime() - t0) / 1e9
                results.emit(
                    result("in_flight", db.store, total, wall) {
                        put("suspending", suspending)
                        put("blocking", blocking)
                        put("step_ms", 1000)
                        put("start_phase_s", started)
                        put("threads_before", threadsBefore)
                        put("threads_peak", threads.peakThreadCount)
                        put("heap_mb_before", heapBefore / 1e6)
                        put("heap_mb_peak", heapPeak / 1e6)
                        put("java", System.getProperty("java.version"))
                    },
                )
            }
        }
    }

    /** Inserts [n] runs made by [make] (group, index in it) through the store, 1,000 per statement; returns the seconds it took. */
    @OptIn(dev.stent.InternalStentApi::class)
    private fun loadRuns(stent: Stent, n: Int, make: (Int, Int) -> dev.stent.store.NewRun): Double {
        val began = System.nanoTime()
        for (b in 0 until n / 1000) stent.store.createRuns((0 until 1000).map { i -> make(b, i) })
        return (System.nanoTime() - began) / 1e9
    }

    /** Starts [count] sleepers due at [dueMs], from 16 coroutines. */
    private suspend fun startSleepers(stent: Stent, count: Int, dueMs: Long) = coroutineScope {
        (1..count).chunked(count / 16 + 1).map { chunk -> async { chunk.forEach { _ -> stent.client.start(sleeper, dueMs) } } }.awaitAll()
    }

    /** Waits until [count] runs exist, none is PENDING or RUNNING and none is in memory; returns the heap in use after a GC. */
    private suspend fun waitAllUnloaded(db: BenchDb, worker: StentWorker, count: Int): Long {
        db.raw().use { c ->
            while (true) {
                val (busy, total) = c.createStatement().executeQuery(
                    "SELECT SUM(CASE WHEN status IN ('PENDING', 'RUNNING') THEN 1 ELSE 0 END), COUNT(*) FROM stent_runs WHERE workflow_name = 'bench-sleeper'",
                ).use { rs -> rs.next(); rs.getLong(1) to rs.getLong(2) }
                if (busy == 0L && total >= count && worker.activeRuns == 0) break
                delay(200.milliseconds)
            }
        }
        return usedHeapAfterGc()
    }

    /** The heap in use after a few GCs. */
    private suspend fun usedHeapAfterGc(): Long {
        repeat(3) { System.gc(); delay(100.milliseconds) }
        val rt = Runtime.getRuntime()
        return rt.totalMemory() - rt.freeMemory()
    }

    fun dbos(name: String) {
        val n = when (name) {
            "step_overhead" -> sizes.steps
            "throughput_1step" -> sizes.throughput
            "start_latency" -> sizes.latencyStarts
            else -> 1000
        }
        val url = stores.dbosDatabase("dbos_$name")
        val java = File(System.getProperty("java.home"), "bin/java").path
        val classPath = System.getProperty("java.class.path")
        val p = ProcessBuilder(java, "-cp", classPath, "dev.stent.bench.dbos.DbosBench", url, stores.pgUser, stores.pgPassword, name, "$n")
            .redirectError(ProcessBuilder.Redirect.INHERIT).start()
        val line = p.inputStream.bufferedReader().readLines().lastOrNull { it.startsWith("{") }
        p.waitFor(10, TimeUnit.MINUTES)
        if (line == null) {
            System.err.println("dbos $name produced no result (exit ${p.exitValue()})")
            return
        }
        results.emit(kotlinx.serialization.json.Json.parseToJsonElement(line) as JsonObject)
    }

    private fun inProcessWorker(stent: Stent, concurrency: Int, unloadThreshold: kotlin.time.Duration = 5.seconds): StentWorker =
        stentWorker(stent) {
            allBenchWorkflows.forEach { register(it) }
            this.concurrency = concurrency
            this.unloadThreshold = unloadThreshold
        }
}

fun percentile(sorted: List<Double>, q: Double): Double =
    if (sorted.isEmpty()) -1.0 else sorted[((sorted.size - 1) * q).toInt()]

fun result(name: String, store: String, n: Int, wallS: Double, extra: kotlinx.serialization.json.JsonObjectBuilder.() -> Unit = {}): JsonObject =
    buildJsonObject {
        put("name", name)
        put("engine", "stent")
        put("store", store)
        put("n", n)
        put("wall_s", wallS)
        put("per_sec", n / wallS)
        extra()
    }

fun JsonObject.str(key: String): String? = (this[key] as? JsonPrimitive)?.content
fun JsonObject.num(key: String): Double? = (this[key] as? JsonPrimitive)?.content?.toDoubleOrNull()
