package dev.stent.it

import dev.stent.FailureKind
import dev.stent.InvalidArgumentException
import dev.stent.RecordStatus
import dev.stent.RunNotFinishedException
import dev.stent.RunStatus
import dev.stent.StepCache
import dev.stent.UnknownRunException
import dev.stent.UnknownScheduleException
import dev.stent.WorkflowFailedException
import dev.stent.codecOf
import dev.stent.queueLimits
import dev.stent.retryPolicy
import dev.stent.startByName
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.collections.shouldContainExactly
import io.kotest.matchers.collections.shouldHaveSize
import io.kotest.matchers.ints.shouldBeGreaterThanOrEqual
import io.kotest.matchers.ints.shouldBeLessThanOrEqual
import io.kotest.matchers.longs.shouldBeGreaterThanOrEqual
import io.kotest.matchers.shouldBe
import io.kotest.matchers.shouldNotBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.delay
import java.io.File
import java.nio.file.Files
import java.time.Instant
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

/**
 * Queues that protect what they call: limits enforced by the claim across workers and processes,
 * dead letters, the step cache, schedules and retention. Run against every store.
 */
abstract class QueuesAndOperationsSuite(store: TestStore) : FunSpec({

    /** The most intervals (start, end) that overlap at any instant; an end at the same instant as a start comes first. */
    fun maxOverlap(intervals: Collection<Pair<Long, Long>>): Int {
        val events = intervals.flatMap { (a, b) -> listOf(a to 1, b to -1) }.sortedWith(compareBy({ it.first }, { it.second }))
        var now = 0
        var max = 0
        for ((_, d) in events) {
            now += d
            max = maxOf(max, now)
        }
        return max
    }

    test("pages after a run (its creation time and id) list every run once, however many share a millisecond; stats count them") {
        withStore(store) { stent ->
            val idle = workflow<Int, Int>("paged") { it }
            // one group insert: many runs in one millisecond
            @OptIn(dev.stent.InternalStentApi::class)
            stent.store.createRuns((1..23).map { dev.stent.store.NewRun("page-$it", idle.name, "$it", "default", 0, 0) })
            val seen = ArrayList<String>()
            var cursor: dev.stent.RunInfo? = null
            while (true) {
                val page = stent.client.list(workflowName = "paged", limit = 5, createdBefore = cursor?.createdAt, beforeId = cursor?.id)
                seen += page.map { it.id }
                if (page.size < 5) break
                cursor = page.last()
            }
            seen shouldHaveSize 23
            seen.toSet() shouldHaveSize 23
            seen shouldBe stent.client.list(workflowName = "paged", limit = 100).map { it.id }
            stent.client.list(workflowName = "paged", createdAfter = Instant.now().plusSeconds(60)).shouldBeEmpty()
            val stats = stent.client.stats()
            stats.byWorkflow["paged"] shouldBe mapOf(RunStatus.PENDING to 23L)
            stats.oldestPending shouldNotBe null
        }
    }

    test("queue concurrency 3 holds across 3 worker JVMs with concurrency 8 each: never more than 3 bodies at once, and all 60 runs finish") {
        val dir = Files.createTempDirectory("stent-limits").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val workers = (1..3).map { startWorkerProcess(db, dir, concurrency = 8, properties = mapOf("stent.test.limitConcurrency" to "3")) }
            try {
                repeat(60) { stent.client.startByName<Int, Int>("limited-work", it, id = "lim-$it", queue = "limited") }
                for (i in 0 until 60) stent.client.await("lim-$i", codecOf<Int>(), 2.minutes) shouldBe i
            } finally {
                workers.forEach { it.kill9() }
            }
            val lines = linesOf(File(dir, "bodies.log")).map { it.split(" ") }
            val starts = lines.filter { it[0] == "start" }.associate { it[1] to it[2].toLong() }
            val ends = lines.filter { it[0] == "end" }.associate { it[1] to it[2].toLong() }
            starts.keys shouldHaveSize 60
            maxOverlap(starts.map { (id, at) -> at to ends.getValue(id) }) shouldBeLessThanOrEqual 3
            // the limit was reached, not just respected: more than one body ran at once
            maxOverlap(starts.map { (id, at) -> at to ends.getValue(id) }) shouldBeGreaterThanOrEqual 2
            stent.client.listQueues().single { it.queue == "limited" }.limits!!.concurrency shouldBe 3
        }
    }

    test("per-key concurrency 1 over 2 keys: at most one run per key at once, the two keys side by side") {
        val db = store.newDb()
        val intervals = ConcurrentHashMap<String, MutableList<Pair<Long, Long>>>()
        val keyed = workflow<String, String>("keyed", { queue = "per-key" }) { key ->
            step("work") {
                val start = System.nanoTime()
                delay(100.milliseconds)
                intervals.computeIfAbsent(key) { java.util.Collections.synchronizedList(ArrayList()) } += start to System.nanoTime()
                key
            }
        }
        db.open().use { a ->
            db.open().use { b ->
                val limits = queueLimits("per-key") { concurrencyPerKey = 1 }
                val w1 = stentWorker(a) {
                    register(keyed)
                    limit(limits)
                    concurrency = 8
                    pollInterval = 50.milliseconds
                }
                val w2 = stentWorker(b) {
                    register(keyed)
                    limit(limits)
                    concurrency = 8
                    pollInterval = 50.milliseconds
                }
                w1.use {
                    w2.use {
                        val runs = (0 until 12).map { i ->
                            val key = if (i % 2 == 0) "customer-a" else "customer-b"
                            a.client.start(keyed, key, id = "key-$i", partitionKey = key)
                        }
                        runs.forEach { it.await(1.minutes) }
                        a.client.describe("key-0").partitionKey shouldBe "customer-a"
                    }
                }
            }
        }
        intervals.keys shouldBe setOf("customer-a", "customer-b")
        intervals.values.forEach { maxOverlap(it) shouldBe 1 }
        maxOverlap(intervals.values.flatten()) shouldBe 2
    }

    test("a rate limit of 20 per second: no window of one second holds more than 20 starts, over 5 seconds") {
        val db = store.newDb()
        val quick = workflow<Int, Int>("rated", { queue = "rated" }) { n -> step("work") { n } }
        db.open().use { a ->
            db.open().use { b ->
                val limits = queueLimits("rated") { rateLimit(20, 1.seconds) }
                val workers = listOf(a, b).map { s ->
                    stentWorker(s) {
                        register(quick)
                        limit(limits)
                        concurrency = 16
                        pollInterval = 20.milliseconds
                    }
                }
                try {
                    (0 until 100).map { a.client.start(quick, it, id = "rate-$it") }.forEach { it.await(1.minutes) }
                } finally {
                    workers.forEach { it.close() }
                }
                val starts = a.client.list(workflowName = "rated", limit = 1000).map { it.startedAt!!.toEpochMilli() }.sorted()
                starts shouldHaveSize 100
                for (s in starts) starts.count { it >= s && it < s + 1000 } shouldBeLessThanOrEqual 20
                // the limit, not the machine, set the pace: 100 starts at 20 per second span at least 4 seconds
                (starts.last() - starts.first()) shouldBeGreaterThanOrEqual 4_000L
            }
        }
    }

    test("a run resuming after a wait does not start again: a rate limit with no room left holds new runs back, not it") {
        withStore(store) { stent ->
            val gated = workflow<String, String>("gated", { queue = "once-a-day" }) { _ -> awaitSignal("go", codecOf<String>()) }
            stent.client.setQueueLimits(queueLimits("once-a-day") { rateLimit(1, 1.days) })
            stentWorker(stent) {
                register(gated)
                unloadThreshold = kotlin.time.Duration.ZERO
                pollInterval = 50.milliseconds
            }.use {
                val first = stent.client.start(gated, "", id = "first")
                eventually("the first run waits, unloaded") { stent.statusOf("first") == RunStatus.WAITING }
                stent.client.start(gated, "", id = "second")
                stent.client.signal("first", "go", "now", codecOf<String>())
                first.await(30.seconds) shouldBe "now"
                stent.statusOf("second") shouldBe RunStatus.PENDING // the day's one start is taken
                stent.client.listQueues().single { it.queue == "once-a-day" }.pending shouldBe 1
            }
        }
    }

    test("limits are validated, stored, listed and removed; removing them frees the queue") {
        withStore(store) { stent ->
            shouldThrow<InvalidArgumentException> { queueLimits("q") { concurrency = 0 } }.message shouldContain "concurrency must be within 1..1000000"
            shouldThrow<InvalidArgumentException> { queueLimits("q") { rateLimit(5, kotlin.time.Duration.INFINITE) } }.message shouldContain "1 ms..1 day"
            shouldThrow<InvalidArgumentException> { queueLimits("q") { rateLimit(-1, 1.seconds) } }.message shouldContain "rateLimit"
            stent.client.setQueueLimits(queueLimits("q") { concurrency = 1 })
            stent.client.listQueues().single { it.queue == "q" }.limits!!.concurrency shouldBe 1
            // a queue with a limit of 1 runs one at a time
            val release = CountDownLatch(1)
            val running = AtomicInteger()
            val held = workflow<Int, Int>("held", { queue = "q" }) { n ->
                step("hold") {
                    running.incrementAndGet()
                    release.await(30, TimeUnit.SECONDS)
                    n
                }
            }
            stentWorker(stent) {
                register(held)
                concurrency = 4
                pollInterval = 50.milliseconds
            }.use {
                val runs = (1..3).map { stent.client.start(held, it) }
                eventually("one body runs") { running.get() == 1 }
                delay(300.milliseconds)
                running.get() shouldBe 1
                stent.client.listQueues().single { it.queue == "q" }.pending shouldBe 2
                stent.client.removeQueueLimits("q")
                eventually("the others start once the limit is gone") { running.get() == 3 }
                release.countDown()
                runs.forEach { it.await(30.seconds) }
            }
            stent.client.listQueues().none { it.queue == "q" } shouldBe true
        }
    }

    test("retry of a run failed at step 3 of 5 runs steps 3 to 5 only and completes; the dead letter is listed, retried once, and its kind kept") {
        withStore(store) { stent ->
            val counts = ConcurrentHashMap<String, AtomicInteger>()
            val broken = AtomicBoolean(true)
            val five = workflow<String, String>("five", { retryPolicy = retryPolicy { maxAttempts = 2; initialDelay = 10.milliseconds } }) { _ ->
                for (i in 1..5) {
                    step("s$i") {
                        counts.computeIfAbsent("s$i") { AtomicInteger() }.incrementAndGet()
                        check(!(i == 3 && broken.get())) { "payment provider down" }
                        "r$i"
                    }
                }
                "done"
            }
            stentWorker(stent) {
                register(five)
                pollInterval = 50.milliseconds
            }.use {
                val run = stent.client.start(five, "x", id = "dl-1")
                shouldThrow<WorkflowFailedException> { run.await(30.seconds) }
                val dead = stent.client.deadLetters()
                dead.map { it.id } shouldContainExactly listOf("dl-1")
                dead.single().failureKind shouldBe FailureKind.STEP
                dead.single().failure!!.toString() shouldContain "payment provider down"
                stent.client.list(status = RunStatus.FAILED, failureKind = FailureKind.STEP).map { it.id } shouldBe listOf("dl-1")
                stent.client.list(status = RunStatus.FAILED, failureKind = FailureKind.POISON).shouldBeEmpty()
                broken.set(false)
                stent.client.retry("dl-1") shouldBe RunStatus.PENDING
                run.await(30.seconds) shouldBe "done"
                stent.client.retry("dl-1") shouldBe RunStatus.COMPLETED // idempotent: nothing to retry any more
                (1..5).map { counts.getValue("s$it").get() } shouldBe listOf(1, 1, 3, 1, 1) // s3: two failed attempts, then one more
                val info = stent.client.describe("dl-1")
                info.retries shouldBe 1
                info.failureKind shouldBe null
                info.records.single { it.id == "s3" }.attempts shouldBe 1 // its attempts started again
                stent.client.deadLetters().shouldBeEmpty()
            }
            shouldThrow<UnknownRunException> { stent.client.retry("nope") }
        }
    }

    test("discard takes a run out of the dead letters and is idempotent; delete removes finished runs only") {
        withStore(store) { stent ->
            val failing = workflow<String, String>("failing", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ -> step("boom") { error("boom") } }
            val waiting = workflow<String, String>("waiting") { _ -> awaitSignal("never", codecOf<String>()) }
            stentWorker(stent) {
                register(failing)
                register(waiting)
                pollInterval = 50.milliseconds
            }.use {
                val a = stent.client.start(failing, "a", id = "d-a")
                shouldThrow<WorkflowFailedException> { a.await(30.seconds) }
                stent.client.discard("d-a") shouldBe RunStatus.FAILED
                val first = stent.client.describe("d-a").discardedAt
                first shouldNotBe null
                stent.client.discard("d-a") shouldBe RunStatus.FAILED
                stent.client.describe("d-a").discardedAt shouldBe first
                stent.client.deadLetters().shouldBeEmpty()
                stent.client.list(status = RunStatus.FAILED).map { it.id } shouldBe listOf("d-a")

                val w = stent.client.start(waiting, "w", id = "d-w")
                eventually("d-w waits") { stent.statusOf("d-w") == RunStatus.WAITING }
                shouldThrow<RunNotFinishedException> { stent.client.delete("d-w") }.message shouldContain "cancel it first"
                stent.client.cancel(w.id)
                stent.client.delete("d-w")
                stent.client.delete("d-a")
                shouldThrow<UnknownRunException> { stent.client.describe("d-a") }
                shouldThrow<UnknownRunException> { stent.client.delete("d-a") }
            }
        }
    }

    test("two workers computing one cache key at once store one value, which every run records; a later run reads it; it expires") {
        val db = store.newDb()
        val bodies = AtomicInteger()
        val together = CountDownLatch(2)
        val cached = workflow<String, String>("cached") { ttl ->
            step("rate", cache = StepCache("fx:EUR:USD", ttl.toLong().milliseconds)) {
                bodies.incrementAndGet()
                together.countDown()
                together.await(10, TimeUnit.SECONDS) // both bodies are in flight before either stores its value
                "computed-by-$runId"
            }
        }
        db.open().use { a ->
            db.open().use { b ->
                val workers = listOf(a, b).map { s ->
                    stentWorker(s) {
                        register(cached)
                        concurrency = 1
                        pollInterval = 20.milliseconds
                    }
                }
                try {
                    val r1 = a.client.start(cached, "60000", id = "c-1")
                    val r2 = b.client.start(cached, "60000", id = "c-2")
                    val v1 = r1.await(30.seconds)
                    val v2 = r2.await(30.seconds)
                    bodies.get() shouldBe 2
                    v1 shouldBe v2
                    v1 shouldContain "computed-by-c-"
                    a.client.start(cached, "60000", id = "c-3").await(30.seconds) shouldBe v1
                    bodies.get() shouldBe 2
                    a.client.describe("c-3").records.single().status shouldBe RecordStatus.COMPLETED
                    // a short TTL: once it passed, the body runs again
                    db.connect().use { c -> c.createStatement().executeUpdate("UPDATE stent_cache SET expires_at = 0") }
                    a.client.start(cached, "60000", id = "c-4").await(30.seconds) shouldBe "computed-by-c-4"
                    bodies.get() shouldBe 3
                } finally {
                    workers.forEach { it.close() }
                }
            }
        }
    }

    test("a cache key or TTL that cannot work is a clear error naming the run and the step") {
        withStore(store) { stent ->
            val badTtl = workflow<String, String>("bad-ttl", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ ->
                step("s", cache = StepCache("k", kotlin.time.Duration.ZERO)) { "x" }
            }
            val badKey = workflow<String, String>("bad-key", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ ->
                step("s", cache = StepCache(" k", 1.seconds)) { "x" }
            }
            stentWorker(stent) {
                register(badTtl)
                register(badKey)
            }.use {
                shouldThrow<WorkflowFailedException> { stent.client.start(badTtl, "", id = "bt").await(30.seconds) }.failure.message shouldContain
                    "step 's': cache ttl must be positive"
                shouldThrow<WorkflowFailedException> { stent.client.start(badKey, "", id = "bk").await(30.seconds) }.failure.message shouldContain
                    "invalid cache key ' k' in workflow 'bad-key' (run 'bk')"
            }
        }
    }

    test("a schedule is listed with its next tick, fires one run per tick, pauses, resumes and is deleted") {
        withStore(store) { stent ->
            val ticks = ConcurrentHashMap.newKeySet<String>()
            val ticked = workflow<String, String>("ticked") { input ->
                ticks += runId
                input
            }
            shouldThrow<InvalidArgumentException> { stent.client.schedule("bad", "61 * * * *", ticked, "x") }.message shouldContain
                "schedule 'bad': invalid cron expression '61 * * * *'"
            shouldThrow<InvalidArgumentException> { stent.client.schedule("bad", "* * *", ticked, "x") }.message shouldContain "use 5"
            shouldThrow<InvalidArgumentException> { stent.client.schedule("bad", "* * * * *", ticked, "x", catchUp = -1) }
            val nightly = stent.client.schedule("nightly", "0 3 * * *", ticked, "report", zone = java.time.ZoneId.of("Europe/Paris"))
            nightly.nextFireAt!!.atZone(java.time.ZoneId.of("Europe/Paris")).hour shouldBe 3
            stent.client.schedule("every-second", "* * * * * *", ticked, "tick")
            stentWorker(stent) {
                register(ticked)
                pollInterval = 50.milliseconds
            }.use {
                eventually("two ticks fired", 10.seconds) { ticks.size >= 2 }
                stent.client.pauseSchedule("every-second")
                val paused = stent.client.listSchedules().single { it.name == "every-second" }
                paused.paused shouldBe true
                delay(1_500.milliseconds)
                val afterPause = stent.client.list(workflowName = "ticked", limit = 1000).size
                delay(1_500.milliseconds)
                stent.client.list(workflowName = "ticked", limit = 1000).size shouldBe afterPause
                stent.client.resumeSchedule("every-second")
                eventually("it fires again", 10.seconds) { stent.client.list(workflowName = "ticked", limit = 1000).size > afterPause }
                stent.client.deleteSchedule("every-second") shouldBe true
                stent.client.deleteSchedule("every-second") shouldBe false
            }
            shouldThrow<UnknownScheduleException> { stent.client.pauseSchedule("every-second") }
            // one run per tick: its id names the second it belongs to
            val ids = stent.client.list(workflowName = "ticked", limit = 1000).map { it.id }
            ids.forEach { it shouldContain "schedule:every-second@" }
            ids.toSet() shouldHaveSize ids.size
            stent.client.listSchedules().map { it.name } shouldBe listOf("nightly")
        }
    }

    test("a schedule every second with 3 worker JVMs for 10 s starts one run per tick, none missing, none doubled, across a kill -9") {
        val dir = Files.createTempDirectory("stent-ticks").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val workers = (1..3).map { startWorkerProcess(db, dir, concurrency = 4) }.toMutableList()
            try {
                stent.client.schedule("pulse", "* * * * * *", tick(dir), "x", catchUp = 30)
                delay(5.seconds)
                workers.removeAt(0).kill9()
                delay(5.seconds)
                stent.client.pauseSchedule("pulse")
                val ids = stent.client.list(workflowName = "tick", limit = 1000).map { it.id }
                for (id in ids) stent.client.await(id, codecOf<String>(), 1.minutes) shouldBe "ok"
                val seconds = ids.map { Instant.parse(it.substringAfter("@")).epochSecond }.sorted()
                seconds.toSet() shouldHaveSize seconds.size // none doubled
                seconds.size shouldBeGreaterThanOrEqual 8
                (seconds.last() - seconds.first() + 1) shouldBe seconds.size.toLong() // none missing
            } finally {
                workers.forEach { it.kill9() }
            }
        }
    }

    test("retention deletes finished runs older than its age with their records, and leaves unfinished runs and dead letters") {
        val db = store.newDb()
        db.open().use { stent ->
            val quick = workflow<String, String>("quick") { s -> step("s") { s } }
            val waits = workflow<String, String>("waits") { _ -> awaitSignal("go", codecOf<String>()) }
            val fails = workflow<String, String>("fails", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ -> step("s") { error("no") } }
            stentWorker(stent) {
                register(quick)
                register(waits)
                register(fails)
                pollInterval = 50.milliseconds
            }.use {
                (1..5).forEach { stent.client.start(quick, "$it", id = "old-$it").await(30.seconds) }
                for (id in listOf("dead-letter", "handled")) shouldThrow<WorkflowFailedException> { stent.client.start(fails, "", id = id).await(30.seconds) }
                stent.client.discard("handled")
                stent.client.start(waits, "", id = "still-waiting")
                eventually("it waits") { stent.statusOf("still-waiting") == RunStatus.WAITING }
            }
            delay(50.milliseconds)
            stentWorker(stent) {
                register(quick)
                register(waits)
                retention = 10.milliseconds
            }.use {
                eventually("old runs are deleted") { stent.client.list(workflowName = "quick").isEmpty() }
                eventually("the discarded failure too") { stent.client.list(workflowName = "fails").size == 1 }
            }
            stent.statusOf("still-waiting") shouldBe RunStatus.WAITING
            stent.client.deadLetters().map { it.id } shouldBe listOf("dead-letter") // kept until handled
            db.connect().use { c ->
                c.createStatement().executeQuery("SELECT COUNT(*) FROM stent_records WHERE run_id LIKE 'old-%'").use { rs ->
                    rs.next()
                    rs.getInt(1) shouldBe 0
                }
            }
        }
    }
})

class SqliteQueuesAndOperationsSpec : QueuesAndOperationsSuite(TestStore.Sqlite)

class PostgresQueuesAndOperationsSpec : QueuesAndOperationsSuite(TestStore.Postgres)
