package dev.stent.it

import dev.stent.awaitSignal
import dev.stent.queueLimits
import dev.stent.setEvent
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.store.WakeUpSink
import dev.stent.store.WorkflowStore
import dev.stent.workflow
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.withTimeoutOrNull
import java.io.File
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes

/** Step bodies append `runId:stepId:pid` to `exec.log` in the log directory, so tests can count executions across processes. */
private fun logExecution(dir: File, runId: String, stepId: String) =
    appendLine(File(dir, "exec.log"), "$runId:$stepId:${ProcessHandle.current().pid()}")

/**
 * Five steps. While the file `block` exists, step s3 hangs after logging until the file `release`
 * appears, so a test can kill or freeze the process inside it. Results name the process.
 */
fun crashFive(dir: File) = workflow<String, String>("crash-five") { _ ->
    for (i in 1..5) {
        step("s$i") {
            logExecution(dir, runId, stepId)
            if (i == 3 && File(dir, "block").exists()) {
                withTimeoutOrNull(10.minutes) { while (!File(dir, "release").exists()) delay(20.milliseconds) }
            }
            "done-$i-${ProcessHandle.current().pid()}"
        }
    }
    "ok"
}

/** A map's child: logs its execution like [crashFive] and doubles its input. */
fun mapChild(dir: File) = workflow<Int, Int>("map-child") { n ->
    step("double") {
        logExecution(dir, runId, stepId)
        delay(20.milliseconds)
        n * 2
    }
}

/** Maps [mapChild] over 0 until n, as map "kids". */
fun mapParent(dir: File) = workflow<Int, List<Int>>("map-parent") { n -> map(mapChild(dir), (0 until n).toList(), id = "kids") }

/** n parallel branches, each a blocking 300 ms step that logs its execution; returns the sum of 1..n. */
fun branches(dir: File) = workflow<Int, Int>("branches") { n ->
    coroutineScope {
        (1..n).map { i ->
            async {
                step("b$i") {
                    logExecution(dir, runId, stepId)
                    Thread.sleep(300)
                    i
                }
            }
        }.awaitAll().sum()
    }
}

/** Publishes `progress` 1..n, waiting for signal `next` after each. */
val progress = workflow<Int, String>("progress") { n ->
    for (i in 1..n) {
        setEvent("progress", i)
        awaitSignal<String>("next")
    }
    "done"
}

/**
 * In queue "limited": one 200 ms step that appends `start <runId> <epoch ms>` and `end <runId> <epoch ms>` to
 * `bodies.log`, so a test can see how many bodies of the queue ran at once across processes.
 */
fun limitedWork(dir: File) = workflow<Int, Int>("limited-work", { queue = "limited" }) { n ->
    step("work") {
        appendLine(File(dir, "bodies.log"), "start $runId ${System.currentTimeMillis()}")
        delay(200.milliseconds)
        appendLine(File(dir, "bodies.log"), "end $runId ${System.currentTimeMillis()}")
        n
    }
}

/** Started by a schedule: logs `runId:tick:pid` like [crashFive]. */
fun tick(dir: File) = workflow<String, String>("tick") { _ ->
    step("tick") {
        logExecution(dir, runId, stepId)
        "ok"
    }
}

/** Kills its own JVM inside a step, every time: the poison guard must stop it. */
val halting = workflow<String, String>("halt") { _ ->
    step("die") { Runtime.getRuntime().halt(3); "unreachable" }
}

/**
 * The store of a worker JVM, changed by system properties for a test:
 * - `stent.test.notify=off`: hears no wake-ups from other processes (yet believes it does, so it polls only every poll interval);
 * - `stent.test.holdCheckpoint=<step id>`: a checkpoint of that step waits, inside the store call and before it reaches the
 *   database, until the file `release` exists in the log directory (a write delayed in flight); every checkpoint's
 *   outcome is logged to `writes.log` as `runId stepId token OUTCOME` (and `H runId stepId` when a hold begins).
 */
private fun testStore(real: WorkflowStore, logDir: File): WorkflowStore {
    val hold = System.getProperty("stent.test.holdCheckpoint")
    val deaf = System.getProperty("stent.test.notify") == "off"
    if (hold == null && !deaf) return real
    val faulty = FaultyStore(real)
    val writes = File(logDir, "writes.log")
    if (hold != null) {
        faulty.beforeCheckpoint = { w ->
            if (w.record.stepId == hold) {
                appendLine(writes, "H ${w.runId} ${w.record.stepId}")
                while (!File(logDir, "release").exists()) Thread.sleep(20)
            }
        }
        faulty.afterCheckpoint = { w, outcome -> appendLine(writes, "${w.runId} ${w.record.stepId} ${w.fencingToken} $outcome") }
    }
    if (!deaf) return faulty
    return object : WorkflowStore by faulty {
        override fun startWakeUps(sink: WakeUpSink): AutoCloseable = AutoCloseable {}
        override val deliversWakeUps: Boolean get() = true
    }
}

/**
 * Counts to 1,000 by continuing as new: each run of the chain records one step (logged like
 * [crashFive]'s) and continues with the next number, so no run's history grows.
 */
fun looper(dir: File) = workflow<Int, Int>("looper") { n ->
    step("tick") {
        logExecution(dir, runId, stepId)
        n
    }
    if (n >= 1_000) n else continueAsNew(n + 1)
}

/**
 * Prices an order, waits for a confirmation, charges. `-Dstent.test.pricing=new` deploys a change
 * behind `version("discount", …)`: runs that quoted before it keep their price; new runs quote 10% off.
 */
fun pricing() = workflow<Int, String>("pricing") { amount ->
    val price = if (System.getProperty("stent.test.pricing") == "new" && version("discount", 0, 1) == 1) {
        step("discount-quote") { amount * 9 / 10 }
    } else {
        step("quote") { amount }
    }
    val by = awaitSignal<String>("confirm")
    step("charge") { "charged $price, confirmed by $by, by pid ${ProcessHandle.current().pid()}" }
}

/**
 * A worker JVM for crash tests: `WorkerProcess <logDir> <concurrency> <leaseMs> <maxClaims> <store args…>`
 * (store args as in [TestDb.processArgs]); `-Dstent.test.pollMs` sets its poll interval (default 50 ms),
 * `-Dstent.test.limitConcurrency` declares that concurrency limit for queue "limited", and
 * see [testStore] for the store's test switches. Prints READY once claiming; runs until killed.
 */
fun main(args: Array<String>) {
    val logDir = args[0]
    val concurrency = args[1].toInt()
    val leaseMs = args[2].toLong()
    val maxClaims = args[3].toInt()
    val stent = TestStore.openFromArgs(args.drop(4)) { testStore(it, File(logDir)) }
    val worker = stentWorker(stent) {
        register(crashFive(File(logDir)))
        register(halting)
        register(mapChild(File(logDir)))
        register(mapParent(File(logDir)))
        register(progress)
        register(branches(File(logDir)))
        register(limitedWork(File(logDir)))
        register(tick(File(logDir)))
        register(looper(File(logDir)))
        register(pricing())
        System.getProperty("stent.test.limitConcurrency")?.let { limit(queueLimits("limited") { this.concurrency = it.toInt() }) }
        maxParallelStepsPerRun = System.getProperty("stent.test.stepsPerRun")?.toInt() ?: 64
        this.concurrency = concurrency
        leaseDuration = leaseMs.milliseconds
        pollInterval = (System.getProperty("stent.test.pollMs")?.toLong() ?: 50L).milliseconds
        this.maxClaims = maxClaims
    }
    Runtime.getRuntime().addShutdownHook(Thread { worker.close(); stent.close() })
    println("READY")
    System.out.flush()
    Thread.sleep(Long.MAX_VALUE)
}
