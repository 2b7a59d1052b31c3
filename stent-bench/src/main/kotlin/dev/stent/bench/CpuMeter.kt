package dev.stent.bench

import java.io.File

/**
 * CPU seconds spent by the processes of a scenario, read from Linux's /proc: this JVM, the worker
 * JVMs, and every `postgres` process. On two cores every process competes for the same CPU, so
 * the CPU each one spends per workflow says where throughput goes; statement latencies do not
 * (they include the time a backend waited for a core). Empty where /proc is missing.
 */
class CpuMeter(private val workerPids: List<Long>) {
    private val start = snapshot()

    /** CPU seconds per process group since this meter was made. */
    fun elapsed(): Map<String, Double> {
        val now = snapshot()
        return now.keys.associateWith { group -> now.getValue(group) - (start[group] ?: 0.0) }
    }

    private fun snapshot(): Map<String, Double> {
        val proc = File("/proc")
        if (!proc.isDirectory) return emptyMap()
        val self = ProcessHandle.current().pid()
        val sums = HashMap<String, Double>()
        for (dir in proc.listFiles().orEmpty()) {
            val pid = dir.name.toLongOrNull() ?: continue
            val stat = runCatching { File(dir, "stat").readText() }.getOrNull() ?: continue
            val comm = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
            val group = when {
                pid == self -> "bench"
                pid in workerPids -> "workers"
                comm.startsWith("postgres") -> "postgres"
                else -> continue
            }
            // utime and stime are fields 14 and 15; after the ')' the fields start at 3
            val fields = stat.substring(stat.lastIndexOf(')') + 2).split(' ')
            sums.merge(group, (fields[11].toLong() + fields[12].toLong()) / TICKS_PER_SECOND, Double::plus)
        }
        return sums
    }

    private companion object {
        /** USER_HZ, 100 on every Linux the JDK supports. */
        const val TICKS_PER_SECOND = 100.0
    }
}
