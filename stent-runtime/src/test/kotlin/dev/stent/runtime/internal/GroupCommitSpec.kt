package dev.stent.runtime.internal

import dev.stent.StentStoreException
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldContainExactly
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicReference
import kotlin.concurrent.thread

/** Runs [body] on [n] threads and returns what each returned or threw, so a failure inside a thread fails the test. */
private fun <T> onThreads(n: Int, body: (Int) -> T): Map<Int, Result<T>> {
    val results = ConcurrentHashMap<Int, Result<T>>()
    (0 until n).map { i -> thread { results[i] = runCatching { body(i) } } }.forEach { it.join() }
    return results
}

class GroupCommitSpec : FunSpec({

    test("writes that arrive while one is in flight go out together, and each caller gets its own result") {
        val batches = Collections.synchronizedList(mutableListOf<List<Int>>())
        val firstInFlight = CountDownLatch(1)
        val releaseFirst = CountDownLatch(1)
        val group = GroupCommit<Int, Int>(maxBatch = 128, maxWaitMs = 60_000) { items ->
            if (batches.isEmpty() && items == listOf(0)) {
                firstInFlight.countDown()
                releaseFirst.await(30, TimeUnit.SECONDS) // hold the first write until the others have queued
            }
            batches += items
            items.map { it * 2 }
        }
        val first = thread { group.submit(0) }
        firstInFlight.await(30, TimeUnit.SECONDS) shouldBe true
        val results = AtomicReference<Map<Int, Result<Int>>>()
        val others = thread { results.set(onThreads(31) { i -> group.submit(i + 1) }) }
        // every other caller is queued behind the first write before it completes
        while (group.queuedForTest() < 31) Thread.sleep(1)
        releaseFirst.countDown()
        first.join()
        others.join()

        results.get().mapValues { it.value.getOrThrow() } shouldBe (0 until 31).associateWith { (it + 1) * 2 }
        batches.map { it.size } shouldBe listOf(1, 31)
        batches[1].sorted() shouldContainExactly (1..31).toList()
    }

    test("a lone write goes out at once, and groups never exceed maxBatch") {
        val sizes = Collections.synchronizedList(mutableListOf<Int>())
        val group = GroupCommit<Int, Int>(maxBatch = 4, maxWaitMs = 60_000) { items -> sizes += items.size; Thread.sleep(5); items }
        group.submit(7) shouldBe 7
        sizes shouldBe listOf(1)
        val results = onThreads(40) { i -> group.submit(i) }
        results.mapValues { it.value.getOrThrow() } shouldBe (0 until 40).associateWith { it }
        sizes.sum() shouldBe 41
        (sizes.maxOrNull()!! <= 4) shouldBe true
    }

    test("when a group fails, each item is written alone: only the bad one's caller sees the error") {
        val inFlight = CountDownLatch(1)
        val release = CountDownLatch(1)
        val group = GroupCommit<String, String>(maxBatch = 128, maxWaitMs = 60_000) { items ->
            if (items == listOf("hold")) {
                inFlight.countDown()
                release.await(30, TimeUnit.SECONDS)
            }
            if ("bad" in items) throw IllegalArgumentException("cannot write 'bad'")
            items.map { it.uppercase() }
        }
        val holder = thread { group.submit("hold") }
        inFlight.await(30, TimeUnit.SECONDS) shouldBe true
        val items = listOf("a", "b", "bad", "c", "d")
        val results = AtomicReference<Map<Int, Result<String>>>()
        val callers = thread { results.set(onThreads(items.size) { i -> group.submit(items[i]) }) }
        while (group.queuedForTest() < items.size) Thread.sleep(1)
        release.countDown()
        holder.join()
        callers.join()
        results.get().forEach { (i, r) ->
            if (items[i] == "bad") (r.exceptionOrNull() as IllegalArgumentException).message shouldBe "cannot write 'bad'"
            else r.getOrThrow() shouldBe items[i].uppercase()
        }
        shouldThrow<IllegalArgumentException> { group.submit("bad") }
    }

    test("one write that hangs does not stall the others: a queued caller writes alone after its bound, new callers at once") {
        val hung = CountDownLatch(1)
        val release = CountDownLatch(1)
        val written = Collections.synchronizedList(mutableListOf<String>())
        val group = GroupCommit<String, String>(maxBatch = 128, maxWaitMs = 200) { items ->
            if (items == listOf("stuck")) {
                hung.countDown()
                release.await(30, TimeUnit.SECONDS)
            }
            written += items
            items
        }
        val stuck = thread { group.submit("stuck") }
        hung.await(30, TimeUnit.SECONDS) shouldBe true
        group.submit("behind") shouldBe "behind" // waited its bound in the queue, then wrote alone
        group.submit("next") shouldBe "next" // the batch in flight is older than the bound: no queueing behind it
        written shouldBe listOf("behind", "next")
        release.countDown()
        stuck.join()
        group.submit("after") shouldBe "after"
        written shouldBe listOf("behind", "next", "stuck", "after")
    }

    test("a caller whose own batch hangs gives up after its bound with a store error") {
        val holdFirst = CountDownLatch(1)
        val firstInFlight = CountDownLatch(1)
        val releaseHung = CountDownLatch(1)
        val group = GroupCommit<String, String>(maxBatch = 128, maxWaitMs = 300) { items ->
            if (items == listOf("x")) {
                firstInFlight.countDown()
                holdFirst.await(30, TimeUnit.SECONDS)
            }
            if ("b" in items) releaseHung.await(30, TimeUnit.SECONDS) // the batch [b, c] hangs
            items
        }
        val first = thread { group.submit("x") }
        firstInFlight.await(30, TimeUnit.SECONDS) shouldBe true
        val results = ConcurrentHashMap<String, Result<String>>()
        val b = thread { results["b"] = runCatching { group.submit("b") } }
        while (group.queuedForTest() < 1) Thread.sleep(1)
        val c = thread { results["c"] = runCatching { group.submit("c") } }
        while (group.queuedForTest() < 2) Thread.sleep(1)
        holdFirst.countDown() // x is written; b leads the batch [b, c], which hangs
        c.join()
        (results["c"]!!.exceptionOrNull() as StentStoreException).message shouldContain "no database reply within 300 ms"
        releaseHung.countDown()
        b.join()
        first.join()
        results["b"]!!.getOrThrow() shouldBe "b"
    }
})
