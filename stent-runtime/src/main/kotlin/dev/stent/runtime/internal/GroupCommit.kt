package dev.stent.runtime.internal

import dev.stent.StentStoreException
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException
import java.util.concurrent.locks.ReentrantLock
import kotlin.concurrent.withLock

/**
 * Group commit for blocking callers: writes of one kind that arrive while an earlier one is in
 * flight go to the database together, as one statement and one commit.
 *
 * The first caller to find no write in flight leads: it writes everything queued (itself
 * included, at most [maxBatch]), hands each caller its result, and passes the lead to the
 * oldest caller still queued. A lone write therefore goes out at once, and a burst costs a few
 * commits instead of one each. [write] must return one result per item, in order, and apply
 * nothing when it throws. When a batch of several fails, each item is written alone, so a bad
 * item fails only its own caller.
 *
 * One write that hangs never stalls the others for long: a caller waits at most [maxWaitMs] in
 * the queue, then writes its item alone; and while the current batch has been in flight longer
 * than that, new callers write alone at once instead of queueing behind it.
 */
internal class GroupCommit<T, R>(
    private val maxBatch: Int,
    /** How long a caller waits in the queue behind a batch in flight before it writes alone. */
    private val maxWaitMs: Long,
    private val write: (List<T>) -> List<R>,
) {
    private class Entry<T, R>(val item: T) {
        val done = CompletableFuture<Result<R>>()
        val lead = CompletableFuture<Unit>()
    }

    private val lock = ReentrantLock()
    private val maxWaitNanos = TimeUnit.MILLISECONDS.toNanos(maxWaitMs)

    // guarded by lock: the callers waiting, whether a batch is in flight, and since when (System.nanoTime)
    private val queue = ArrayDeque<Entry<T, R>>()
    private var busy = false
    private var batchSince = 0L

    private enum class Role { LEAD, FOLLOW, ALONE }

    /**
     * Writes [item], alone or with others; blocks the calling thread until it is written. A caller
     * whose item sits in a batch that has been in flight for [maxWaitMs] gives up with a
     * [StentStoreException]: that batch may still land (every write Stent groups is fenced or
     * idempotent, so a late one is harmless).
     */
    fun submit(item: T): R {
        val me = Entry<T, R>(item)
        val role = lock.withLock {
            when {
                !busy -> {
                    busy = true
                    batchSince = System.nanoTime()
                    queue.addLast(me)
                    Role.LEAD
                }
                System.nanoTime() - batchSince > maxWaitNanos -> Role.ALONE // the batch in flight is stuck: do not queue behind it
                else -> {
                    queue.addLast(me)
                    Role.FOLLOW
                }
            }
        }
        when (role) {
            Role.ALONE -> return alone(item)
            Role.LEAD -> lead()
            Role.FOLLOW -> {
                val waited = try {
                    CompletableFuture.anyOf(me.done, me.lead).get(maxWaitMs, TimeUnit.MILLISECONDS)
                    null
                } catch (e: TimeoutException) {
                    e
                } catch (e: InterruptedException) {
                    Thread.currentThread().interrupt()
                    e
                }
                if (waited != null) {
                    var inFlightFor = 0L
                    val next = lock.withLock {
                        when {
                            // handed the lead (or answered) at the last moment: go on, or the queue stalls behind this caller
                            me.lead.isDone || me.done.isDone -> null
                            queue.remove(me) -> Role.ALONE // never taken into a batch: safe to write on its own
                            else -> Role.FOLLOW.also { inFlightFor = System.nanoTime() - batchSince } // in the batch in flight
                        }
                    }
                    if (next == Role.ALONE) {
                        if (waited is InterruptedException) throw StentStoreException("interrupted while waiting to write", waited)
                        return alone(item)
                    }
                    if (next == Role.FOLLOW) {
                        // give the batch that holds this item its own full bound, then give up: its outcome is not known
                        val left = (maxWaitNanos - inFlightFor).coerceAtLeast(0)
                        try {
                            if (waited !is InterruptedException) me.done.get(left, TimeUnit.NANOSECONDS)
                        } catch (e: TimeoutException) {
                            Unit
                        } catch (e: InterruptedException) {
                            Thread.currentThread().interrupt()
                        }
                        if (!me.done.isDone) throw StentStoreException("no database reply within $maxWaitMs ms: the write in flight is stuck", waited)
                    }
                }
                if (me.done.isDone) return me.done.join().getOrThrow()
                lead()
            }
        }
        return me.done.join().getOrThrow()
    }

    private fun alone(item: T): R = write(listOf(item)).single()

    /** Writes one batch from the head of the queue, then hands the lead to the next caller in line. */
    private fun lead() {
        val batch = lock.withLock {
            batchSince = System.nanoTime()
            List(minOf(maxBatch, queue.size)) { queue.removeFirst() }
        }
        // an interrupt meant for this caller (a step body being stopped) must not fail the other callers' writes
        val interrupted = Thread.interrupted()
        try {
            deliver(batch)
        } finally {
            if (interrupted) Thread.currentThread().interrupt()
            // handed over under the lock, so a caller that gives up (see submit) never leaves with the lead
            lock.withLock {
                val next = queue.firstOrNull()
                if (next == null) busy = false else next.lead.complete(Unit)
            }
        }
    }

    // Every entry of the batch gets an outcome, whatever is thrown; the callers rethrow it.
    private fun deliver(batch: List<Entry<T, R>>) {
        val outcomes: List<Result<R>> = try {
            val rs = write(batch.map { it.item })
            check(rs.size == batch.size) { "group write returned ${rs.size} results for ${batch.size} items" }
            rs.map { Result.success(it) }
        } catch (e: Throwable) {
            if (batch.size == 1) listOf(Result.failure(e)) else batch.map { runCatching { write(listOf(it.item)).single() } }
        }
        batch.forEachIndexed { i, e -> e.done.complete(outcomes[i]) }
    }

    /** How many callers wait in the queue now (not counting a batch in flight); for tests. */
    internal fun queuedForTest(): Int = lock.withLock { queue.size }
}
