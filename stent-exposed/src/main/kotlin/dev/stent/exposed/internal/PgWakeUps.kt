package dev.stent.exposed.internal

import dev.stent.store.WakeUpSink
import org.postgresql.PGConnection
import org.slf4j.LoggerFactory
import java.sql.Connection

/**
 * Listens on one PostgreSQL channel with a dedicated connection and turns notifications
 * (`kind:runId`) into wake-ups. A dropped connection is reopened with back-off; after each
 * (re)connect it signals new work, since notifications sent meanwhile are lost (polling is the
 * safety net). One thread, owned by the store, stopped by [close].
 */
internal class PgWakeUps(
    private val connect: () -> Connection,
    private val channel: String,
    private val sink: WakeUpSink,
) : AutoCloseable {
    private val log = LoggerFactory.getLogger("dev.stent.postgres")

    @Volatile
    private var closed = false

    // guarded by this: the connection in use, closed from close() to interrupt a blocking read
    private var current: Connection? = null

    private val thread = Thread(::loop, "stent-pg-listen-$channel").apply {
        isDaemon = true
        start()
    }

    private fun loop() {
        var backoff = 100L
        while (!closed) {
            try {
                connect().use { conn ->
                    synchronized(this) { if (closed) return; current = conn }
                    conn.autoCommit = true
                    conn.createStatement().use { it.execute("LISTEN \"$channel\"") }
                    backoff = 100L
                    sink.reconnected()
                    val pg = conn.unwrap(PGConnection::class.java)
                    var lastPing = System.nanoTime()
                    while (!closed) {
                        for (n in pg.getNotifications(POLL_MS) ?: emptyArray()) dispatch(n.parameter)
                        if (System.nanoTime() - lastPing > PING_NANOS) {
                            // a half-open connection reports no error while reading notifications: probe it
                            conn.createStatement().use { it.execute("SELECT 1") }
                            lastPing = System.nanoTime()
                        }
                    }
                }
            } catch (e: Exception) {
                if (closed) return
                log.warn("stent: wake-up connection lost ({}); reconnecting in {} ms", e.message, backoff)
                try {
                    Thread.sleep(backoff)
                } catch (_: InterruptedException) {
                    return
                }
                backoff = (backoff * 2).coerceAtMost(5_000L)
            } finally {
                synchronized(this) { current = null }
            }
        }
    }

    private fun dispatch(payload: String) {
        val kind = payload.firstOrNull() ?: return
        val runId = payload.substringAfter(':', "")
        when (kind) {
            ExposedStore.WORK -> sink.work()
            ExposedStore.FINISHED -> sink.finished(runId)
            ExposedStore.SIGNAL -> sink.signal(runId)
            ExposedStore.CANCEL -> sink.cancel(runId)
        }
    }

    override fun close() {
        closed = true
        synchronized(this) { runCatching { current?.close() } }
        thread.interrupt()
        thread.join(5_000)
    }

    private companion object {
        const val POLL_MS = 500
        const val PING_NANOS = 10_000_000_000L
    }
}
