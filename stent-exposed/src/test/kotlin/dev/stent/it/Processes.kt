package dev.stent.it

import java.io.File
import java.util.concurrent.TimeUnit

/** Starts a worker JVM ([WorkerProcess]) on the test classpath and waits until it says READY. */
fun startWorkerProcess(
    db: TestDb,
    dir: File,
    concurrency: Int = 8,
    leaseMs: Long = 2000,
    maxClaims: Int = 10,
    /** `-D` options of the worker JVM, e.g. `stent.test.pollMs` (see WorkerProcess.kt). */
    properties: Map<String, String> = emptyMap(),
): Process {
    val java = File(System.getProperty("java.home"), "bin/java").path
    val cp = System.getProperty("surefire.test.class.path") ?: System.getProperty("java.class.path")
    val out = File(dir, "worker-${System.nanoTime()}.out")
    val jvm = listOf(java, "-Xmx256m", "-XX:TieredStopAtLevel=1") + properties.map { (k, v) -> "-D$k=$v" }
    val p = ProcessBuilder(jvm + listOf("-cp", cp, "dev.stent.it.WorkerProcessKt", dir.path, "$concurrency", "$leaseMs", "$maxClaims") + db.processArgs)
        .redirectErrorStream(true)
        .redirectOutput(out)
        .start()
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
    while (!out.readText().contains("READY")) {
        if (!p.isAlive && !out.readText().contains("READY")) error("worker process exited early:\n${out.readText()}")
        check(System.nanoTime() < deadline) { "worker process did not start:\n${out.readText()}" }
        Thread.sleep(50)
    }
    return p
}

/** `kill -9`. */
fun Process.kill9() {
    destroyForcibly()
    waitFor(30, TimeUnit.SECONDS)
}

/** Executions per `runId:stepId` logged by step bodies, and the pids that ran them. */
class ExecutionLog(dir: File) {
    val rawLines = linesOf(File(dir, "exec.log")).map { it.split(":") }
    private val lines get() = rawLines
    val counts: Map<String, Int> = lines.groupingBy { "${it[0]}:${it[1]}" }.eachCount()
    val pids: Set<String> = lines.map { it[2] }.toSet()
    fun count(runId: String, stepId: String) = counts["$runId:$stepId"] ?: 0
}

/** Sends a POSIX signal (`STOP`, `CONT`) to the process. */
fun Process.signal(name: String) {
    val rc = ProcessBuilder("kill", "-$name", pid().toString()).inheritIO().start().waitFor()
    check(rc == 0) { "kill -$name ${pid()} failed with $rc" }
}

/** The pids that executed `runId:stepId`, in log order. */
fun ExecutionLog.pidsOf(key: String): List<String> = rawLines.filter { "${it[0]}:${it[1]}" == key }.map { it[2] }
