package dev.stent.internal

import java.util.concurrent.CompletableFuture
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
 */
internal class GroupCommit<T, R>(private val maxBatch: Int, private val write: (List<T>) -> List<R>) {
    private class Entry<T, R>(val item: T) {
        val done = CompletableFuture<Result<R>>()
        val lead = CompletableFuture<Unit>()
    }

    private val lock = ReentrantLock()

    // guarded by lock
    private val queue = ArrayDeque<Entry<T, R>>()
    private var busy = false

    /** Writes [item], alone or with others; blocks the calling thread until it is written. */
    fun submit(item: T): R {
        val me = Entry<T, R>(item)
        val leads = lock.withLock {
            queue.addLast(me)
            !busy.also { busy = true }
        }
        if (!leads) {
            CompletableFuture.anyOf(me.done, me.lead).join()
            if (me.done.isDone) return me.done.join().getOrThrow()
        }
        lead()
        return me.done.join().getOrThrow()
    }

    /** Writes one batch from the head of the queue, then hands the lead to the next caller in line. */
    private fun lead() {
        val batch = lock.withLock { List(minOf(maxBatch, queue.size)) { queue.removeFirst() } }
        try {
            deliver(batch)
        } finally {
            val next = lock.withLock { queue.firstOrNull().also { if (it == null) busy = false } }
            next?.lead?.complete(Unit)
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
}
