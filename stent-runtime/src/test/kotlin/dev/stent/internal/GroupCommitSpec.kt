package dev.stent.internal

import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

class GroupCommitSpec : FunSpec({

    test("writes that arrive while one is in flight go out together, and each caller gets its own result") {
        val submitted = AtomicInteger()
        val batches = Collections.synchronizedList(mutableListOf<List<Int>>())
        val group = GroupCommit<Int, Int>(maxBatch = 128) { items ->
            if (batches.isEmpty()) {
                // hold the first write until every other caller is about to queue behind it
                while (submitted.get() < 32) Thread.sleep(1)
                Thread.sleep(200)
            }
            batches += items
            items.map { it * 2 }
        }
        val results = ConcurrentHashMap<Int, Int>()
        val first = thread { submitted.incrementAndGet(); results[0] = group.submit(0) }
        while (batches.isEmpty() && submitted.get() == 0) Thread.sleep(1)
        Thread.sleep(20) // the first caller leads
        val others = (1 until 32).map { i -> thread { submitted.incrementAndGet(); results[i] = group.submit(i) } }
        (others + first).forEach { it.join() }

        results shouldBe (0 until 32).associateWith { it * 2 }
        batches.map { it.size } shouldBe listOf(1, 31)
    }

    test("a lone write goes out at once, and groups never exceed maxBatch") {
        val sizes = Collections.synchronizedList(mutableListOf<Int>())
        val group = GroupCommit<Int, Int>(maxBatch = 4) { items -> sizes += items.size; Thread.sleep(5); items }
        group.submit(7) shouldBe 7
        (1..40).map { i -> thread { group.submit(i) shouldBe i } }.forEach { it.join() }
        sizes.sum() shouldBe 41
        (sizes.maxOrNull()!! <= 4) shouldBe true
    }

    test("when a group fails, each item is written alone: only the bad one's caller sees the error") {
        val group = GroupCommit<String, String>(maxBatch = 128) { items ->
            if ("bad" in items) throw IllegalArgumentException("cannot write 'bad'")
            Thread.sleep(20)
            items.map { it.uppercase() }
        }
        val results = ConcurrentHashMap<String, Any>()
        val callers = listOf("a", "b", "bad", "c", "d").map { item ->
            thread { results[item] = runCatching { group.submit(item) }.fold({ it }, { it }) }
        }
        callers.forEach { it.join() }
        listOf("a", "b", "c", "d").forEach { results[it] shouldBe it.uppercase() }
        (results["bad"] as IllegalArgumentException).message shouldBe "cannot write 'bad'"
        shouldThrow<IllegalArgumentException> { group.submit("bad") }
    }
})
