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
 *
 * The connection may come from a pool the caller owns (`Stent.postgres(dataSource)`), so it is
 * never given back still listening: the thread runs `UNLISTEN *` before it closes the connection,
 * on [close] and on every reconnect; a connection it cannot clean up is aborted, which makes the
 * pool discard it.
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
                val conn = connect()
                try {
                    synchronized(this) { if (closed) return; current = conn }
                    conn.autoCommit = true
                    conn.createStatement().use { it.execute("LISTEN \"$channel\"") }
                    backoff = 100L
                    sink.reconnected()
                    val pg = conn.unwrap(PGConnection::class.java)
                    var lastPing = System.nanoTime()
                    while (!closed) {
                        for (n in pg.getNotifications(POLL_MS) ?: emptyArray()) WakeUpMessage.dispatch(n.parameter, sink)
                        if (System.nanoTime() - lastPing > PING_NANOS) {
                            // a half-open connection reports no error while reading notifications: probe it
                            conn.createStatement().use { it.execute("SELECT 1") }
                            lastPing = System.nanoTime()
                        }
                    }
                } finally {
                    giveBack(conn)
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

    /** Stops listening and closes [conn]; a connection that cannot be cleaned up is aborted, never pooled while listening. */
    private fun giveBack(conn: Connection) {
        val clean = runCatching { conn.createStatement().use { it.execute("UNLISTEN *") } }.isSuccess
        // from here on it is not close()'s to abort: once given back, the connection may be in use elsewhere
        synchronized(this) { current = null }
        if (clean) runCatching { conn.close() } else abort(conn)
    }

    private fun abort(conn: Connection) {
        runCatching { conn.abort { it.run() } }
        runCatching { conn.close() }
    }

    /**
     * Stops the thread: it leaves its read within [POLL_MS], unlistens and closes the connection.
     * If it is stuck (a network that hangs), the connection is aborted from here. Returns within about 3 s.
     */
    override fun close() {
        closed = true
        thread.join(POLL_MS + 1_500L)
        if (thread.isAlive) {
            synchronized(this) { current?.let(::abort) }
            thread.interrupt()
            thread.join(1_000)
        }
    }

    private companion object {
        /** How long one read for notifications blocks; also how long close() waits for the thread to clean up. */
        const val POLL_MS = 100
        const val PING_NANOS = 10_000_000_000L
    }
}
