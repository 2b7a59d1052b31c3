package dev.stent.it

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentOptions
import kotlinx.coroutines.delay
import java.io.File
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource

/** Opens a fresh database of [store], runs [block], closes it. */
suspend fun <T> withStore(store: TestStore, options: StentOptions = StentOptions(), block: suspend (Stent) -> T): T =
    store.newDb().open(options).use { block(it) }

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
