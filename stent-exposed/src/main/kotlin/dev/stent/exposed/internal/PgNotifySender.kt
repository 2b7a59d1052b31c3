package dev.stent.exposed.internal

import org.slf4j.LoggerFactory
import java.util.concurrent.locks.ReentrantLock
import javax.sql.DataSource
import kotlin.concurrent.withLock

/**
 * Sends wake-ups (`kind:runId`) on one PostgreSQL channel from one background thread, coalesced.
 *
 * A transaction that NOTIFYs holds a database-wide lock from its commit until the commit is
 * durable, so a NOTIFY inside every start and every finish would serialize those commits (measured:
 * 5,000 concurrent starts took more than twice as long). Writers call [send] after their own commit;
 * the thread sends everything queued meanwhile in one statement, so a burst of starts and finishes
 * costs one locked commit, not one each. Wake-ups are hints: one lost to a failure here is made good
 * by polling.
 */
internal class PgNotifySender(private val dataSource: DataSource, private val channel: String) : AutoCloseable {
    private val log = LoggerFactory.getLogger("dev.stent.postgres")
    private val lock = ReentrantLock()
    private val queued = lock.newCondition()

    // guarded by lock
    private var pending = LinkedHashSet<String>()
    private var closed = false

    private val thread = Thread(::loop, "stent-pg-notify-$channel").apply {
        isDaemon = true
        start()
    }

    /** Queues [payload]; duplicates of a payload still queued are dropped. */
    fun send(payload: String) = lock.withLock {
        if (!closed && pending.add(payload) && pending.size == 1) queued.signal()
    }

    private fun loop() {
        while (true) {
            val batch = lock.withLock {
                while (pending.isEmpty() && !closed) {
                    try {
                        queued.await()
                    } catch (_: InterruptedException) {
                        return
                    }
                }
                if (pending.isEmpty()) return
                pending.also { pending = LinkedHashSet() }
            }
            try {
                dataSource.connection.use { c ->
                    c.prepareStatement("SELECT pg_notify(?, p) FROM unnest(?) AS p").use { ps ->
                        for (chunk in batch.chunked(MAX_PER_STATEMENT)) {
                            ps.setString(1, channel)
                            ps.setArray(2, c.createArrayOf("text", chunk.toTypedArray()))
                            ps.executeQuery().close()
                        }
                    }
                }
            } catch (e: Exception) {
                log.debug("stent: {} wake-ups not sent ({}); workers and awaiters fall back to polling", batch.size, e.message)
            }
        }
    }

    /** Sends what is queued, then stops the thread. */
    override fun close() {
        lock.withLock {
            closed = true
            queued.signal()
        }
        thread.join(5_000)
    }

    private companion object {
        const val MAX_PER_STATEMENT = 1_000
    }
}
