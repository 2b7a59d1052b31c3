package dev.stent.it

import dev.stent.step
import dev.stent.stentWorker
import dev.stent.workflow
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

/** Kills its own JVM inside a step, every time: the poison guard must stop it. */
val halting = workflow<String, String>("halt") { _ ->
    step("die") { Runtime.getRuntime().halt(3); "unreachable" }
}

/**
 * A worker JVM for crash tests: `WorkerProcess <logDir> <concurrency> <leaseMs> <maxClaims> <store args…>`
 * (store args as in [TestDb.processArgs]). Prints READY once claiming; runs until killed.
 */
fun main(args: Array<String>) {
    val logDir = args[0]
    val concurrency = args[1].toInt()
    val leaseMs = args[2].toLong()
    val maxClaims = args[3].toInt()
    val stent = TestStore.openFromArgs(args.drop(4))
    val worker = stentWorker(stent) {
        register(crashFive(File(logDir)))
        register(halting)
        this.concurrency = concurrency
        leaseDuration = leaseMs.milliseconds
        pollInterval = 50.milliseconds
        this.maxClaims = maxClaims
    }
    Runtime.getRuntime().addShutdownHook(Thread { worker.close(); stent.close() })
    println("READY")
    System.out.flush()
    Thread.sleep(Long.MAX_VALUE)
}
