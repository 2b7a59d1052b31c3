package dev.stent.it

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentOptions
import dev.stent.sqlite
import kotlinx.coroutines.delay
import java.io.File
import java.nio.file.Files
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource

/** A fresh SQLite file in its own temp directory. */
fun tempDbPath(): String = Files.createTempDirectory("stent-test").resolve("stent.db").toString()

/** Opens a fresh SQLite store, runs [block], closes it. */
suspend fun <T> withSqlite(options: StentOptions = StentOptions(), block: suspend (Stent) -> T): T =
    Stent.sqlite(tempDbPath(), options).use { block(it) }

/** Polls [condition] until true or [timeout] passes (then fails with [message]). */
suspend fun eventually(message: String, timeout: Duration = 20.seconds, condition: suspend () -> Boolean) {
    val start = TimeSource.Monotonic.markNow()
    while (!condition()) {
        if (start.elapsedNow() > timeout) error("timed out after $timeout waiting until $message")
        delay(20.milliseconds)
    }
}

suspend fun Stent.statusOf(runId: String): RunStatus = client.describe(runId).status

/** Lines of a text file, or none if it does not exist. */
fun linesOf(file: File): List<String> = if (file.exists()) file.readLines().filter { it.isNotBlank() } else emptyList()

/** Appends one line and forces it to the OS, so a killed process leaves it behind. */
@Synchronized
fun appendLine(file: File, line: String) {
    java.io.FileOutputStream(file, true).use { it.write("$line\n".toByteArray()); it.fd.sync() }
}
