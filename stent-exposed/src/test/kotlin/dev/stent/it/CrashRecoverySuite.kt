package dev.stent.it

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.WorkflowCancelledException
import dev.stent.WorkflowFailedException
import dev.stent.awaitEvent
import dev.stent.codecOf
import dev.stent.signal
import dev.stent.startByName
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldHaveSize
import io.kotest.matchers.ints.shouldBeGreaterThanOrEqual
import io.kotest.matchers.ints.shouldBeLessThan
import io.kotest.matchers.ints.shouldBeLessThanOrEqual
import io.kotest.matchers.shouldBe
import io.kotest.matchers.shouldNotBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import java.io.File
import java.nio.file.Files
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Crashes of real worker processes, run against every store. */
abstract class CrashRecoverySuite(store: TestStore) : FunSpec({

    test("a finished step is not run again after its worker process is killed with kill -9") {
        val dir = Files.createTempDirectory("stent-crash").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            File(dir, "block").writeText("hang in s3")
            val first = startWorkerProcess(db, dir, concurrency = 4)
            try {
                stent.client.startByName<String, String>("crash-five", "", id = "k1")
                eventually("step s3 is in flight") { ExecutionLog(dir).count("k1", "s3") == 1 }
            } finally {
                first.kill9()
            }
            File(dir, "block").delete()
            val second = startWorkerProcess(db, dir, concurrency = 4)
            try {
                stent.client.await("k1", codecOf<String>(), 60.seconds) shouldBe "ok"
            } finally {
                second.kill9()
            }
            val log = ExecutionLog(dir)
            (1..5).map { log.count("k1", "s$it") } shouldBe listOf(1, 1, 2, 1, 1) // only s3 was in flight at the kill
            log.pids shouldHaveSize 2
            val info = stent.client.describe("k1")
            info.status shouldBe RunStatus.COMPLETED
            info.records.map { it.id to it.status } shouldBe (1..5).map { "s$it" to RecordStatus.COMPLETED }
        }
    }

    test("continue-as-new 1,000 times with a kill -9 midway: the chain ends at 1,000, every run's history is one record, each tick ran") {
        val dir = Files.createTempDirectory("stent-loop").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val first = startWorkerProcess(db, dir)
            try {
                stent.client.startByName<Int, Int>("looper", 1, id = "loop")
                eventually("the chain is a few hundred runs long", 60.seconds) { ExecutionLog(dir).counts.size >= 300 }
            } finally {
                first.kill9()
            }
            val atKill = ExecutionLog(dir).counts.size
            val second = startWorkerProcess(db, dir)
            try {
                stent.client.await("loop", codecOf<Int>(), 120.seconds) shouldBe 1_000
            } finally {
                second.kill9()
            }
            val ids = listOf("loop") + (2..1_000).map { "loop~$it" }
            val log = ExecutionLog(dir)
            ids.forEach { log.count(it, "tick") shouldBeGreaterThanOrEqual 1 }
            // only a tick in flight at the kill may have run twice
            log.counts.values.count { it > 1 } shouldBeLessThanOrEqual 1
            log.pids shouldHaveSize 2
            atKill shouldBeLessThan 1_000
            for (id in listOf("loop", "loop~500", "loop~999")) {
                val info = stent.client.describe(id)
                info.status shouldBe RunStatus.COMPLETED
                info.records.map { it.id } shouldBe listOf("tick")
                info.continuedAs shouldNotBe null
            }
            stent.client.describe("loop~1000").continuedAs shouldBe null
            stent.client.list(workflowName = "looper", limit = 2_000).size shouldBe 1_000
        }
    }

    test("a versioned change deployed with runs in flight: old runs finish on the old path in the new JVM, new runs take the new one") {
        val dir = Files.createTempDirectory("stent-version").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val old = startWorkerProcess(db, dir, properties = mapOf("stent.test.pricing" to "old"))
            val before = (1..3).map { "before-$it" }
            try {
                before.forEach { stent.client.startByName<Int, String>("pricing", 100, id = it) }
                eventually("old runs quoted and wait") { before.all { stent.client.describe(it).status == RunStatus.WAITING } }
            } finally {
                old.kill9()
            }
            val inFlight = stent.client.history("before-1")
            val new = startWorkerProcess(db, dir, properties = mapOf("stent.test.pricing" to "new"))
            val after = (1..3).map { "after-$it" }
            try {
                after.forEach { stent.client.startByName<Int, String>("pricing", 100, id = it) }
                eventually("new runs quoted and wait") { after.all { stent.client.describe(it).status == RunStatus.WAITING } }
                (before + after).forEach { stent.client.signal(it, "confirm", "ops") }
                before.forEach { stent.client.await(it, codecOf<String>(), 60.seconds) shouldContain "charged 100, confirmed by ops, by pid ${new.pid()}" }
                after.forEach { stent.client.await(it, codecOf<String>(), 60.seconds) shouldContain "charged 90, confirmed by ops, by pid ${new.pid()}" }
            } finally {
                new.kill9()
            }
            val oldRun = stent.client.describe("before-1").records.associate { it.id to it.result }
            oldRun["version:discount"] shouldBe "0"
            oldRun.keys shouldBe setOf("quote", "version:discount", "signal:confirm#1", "charge")
            val newRun = stent.client.describe("after-1").records.associate { it.id to it.result }
            newRun["version:discount"] shouldBe "1"
            newRun.keys shouldBe setOf("version:discount", "discount-quote", "signal:confirm#1", "charge")
            inFlight.status shouldBe RunStatus.WAITING
            inFlight.records.map { it.id } shouldBe listOf("quote")
        }
    }

    test("two worker processes on one database never run a run twice: 200 workflows x 5 steps, each step once") {
        val dir = Files.createTempDirectory("stent-two").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val workers = listOf(startWorkerProcess(db, dir), startWorkerProcess(db, dir))
            try {
                val ids = (1..200).map { "r$it" }
                ids.forEach { stent.client.startByName<String, String>("crash-five", "", id = it) }
                coroutineScope { ids.map { async { stent.client.await(it, codecOf<String>(), 120.seconds) } }.awaitAll() }
                    .toSet() shouldBe setOf("ok")
            } finally {
                workers.forEach { it.kill9() }
            }
            val log = ExecutionLog(dir)
            log.counts.size shouldBe 1000
            log.counts.values.toSet() shouldBe setOf(1)
            log.pids shouldHaveSize 2
            for (i in listOf(1, 77, 200)) {
                val info = stent.client.describe("r$i")
                info.status shouldBe RunStatus.COMPLETED
                info.records.map { it.id } shouldBe (1..5).map { "s$it" }
            }
        }
    }

    test("a map of 500 children over 3 worker JVMs, one killed midway and replaced: ordered result, every child once, spread over processes") {
        val dir = Files.createTempDirectory("stent-map").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val workers = mutableListOf(startWorkerProcess(db, dir), startWorkerProcess(db, dir), startWorkerProcess(db, dir))
            val killed: Long
            try {
                val run = stent.client.startByName<Int, List<Int>>("map-parent", 500, id = "m")
                eventually("children run", 60.seconds) { ExecutionLog(dir).counts.size >= 150 }
                killed = workers.first().pid()
                workers.removeFirst().kill9()
                workers += startWorkerProcess(db, dir)
                run.await(180.seconds) shouldBe (0 until 500).map { it * 2 }
            } finally {
                workers.forEach { it.kill9() }
            }
            val log = ExecutionLog(dir)
            log.counts.size shouldBe 500 // every child ran
            log.pids.size shouldBeGreaterThanOrEqual 2 // over the pool, not the parent's process alone
            // a child runs twice only if it was in flight in the killed process (8 slots)
            val again = log.counts.filterValues { it > 1 }
            again.size shouldBeLessThanOrEqual 8
            again.values.forEach { it shouldBe 2 }
            again.keys.forEach { key -> log.pidsOf(key).contains(killed.toString()) shouldBe true }
            stent.client.list(parentId = "m", limit = 1000).size shouldBe 500
        }
    }

    test("a parent killed between starting its children and recording them starts no child twice") {
        val dir = Files.createTempDirectory("stent-map-kill").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            // the map's record of how many children it started is held in flight, after the children were inserted
            var worker = startWorkerProcess(db, dir, properties = mapOf("stent.test.holdCheckpoint" to "kids"))
            try {
                val run = stent.client.startByName<Int, List<Int>>("map-parent", 20, id = "mk")
                eventually("the start of the children is being recorded") { File(dir, "writes.log").let { it.exists() && it.readText().contains("H mk kids") } }
                stent.client.list(parentId = "mk", limit = 100).size shouldBe 20 // inserted, not yet recorded by the parent
                worker.kill9()
                worker = startWorkerProcess(db, dir)
                run.await(120.seconds) shouldBe (0 until 20).map { it * 2 }
            } finally {
                worker.kill9()
            }
            stent.client.list(parentId = "mk", limit = 100).map { it.id }.toSet() shouldBe (0 until 20).map { "mk/kids/$it" }.toSet()
            // the same 20 child runs, each finished once; a child body in flight at the kill may have run again, nothing more
            (0 until 20).forEach { stent.client.describe("mk/kids/$it").status shouldBe RunStatus.COMPLETED }
            ExecutionLog(dir).counts.filterKeys { it.startsWith("mk/") }.values.forEach { it shouldBeLessThanOrEqual 2 }
        }
    }

    test("an event published in a worker JVM is seen, every version, by a client in another process") {
        val dir = Files.createTempDirectory("stent-events").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            val worker = startWorkerProcess(db, dir)
            try {
                val run = stent.client.startByName<Int, String>("progress", 3, id = "pe")
                var version = 0L
                val seen = (1..3).map {
                    val event = stent.client.awaitEvent<Int>("pe", "progress", afterVersion = version, timeout = 30.seconds)!!
                    version = event.version
                    stent.client.signal("pe", "next", "go")
                    event.value
                }
                seen shouldBe listOf(1, 2, 3)
                run.await(30.seconds) shouldBe "done"
            } finally {
                worker.kill9()
            }
        }
    }

    test("a kill -9 in the middle of 60 parallel blocking branches re-runs only the bodies in flight") {
        val dir = Files.createTempDirectory("stent-branches").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            var worker = startWorkerProcess(db, dir, properties = mapOf("stent.test.stepsPerRun" to "10"))
            val killed: Long
            try {
                val run = stent.client.startByName<Int, Int>("branches", 60, id = "br")
                eventually("a few waves of bodies ran") { ExecutionLog(dir).counts.size >= 25 }
                killed = worker.pid()
                worker.kill9()
                ExecutionLog(dir).counts.size shouldBeLessThan 60 // the kill landed in the middle of the run
                worker = startWorkerProcess(db, dir)
                run.await(120.seconds) shouldBe (1..60).sum()
            } finally {
                worker.kill9()
            }
            val log = ExecutionLog(dir)
            log.counts.size shouldBe 60
            val again = log.counts.filterValues { it > 1 }
            // re-run: the bodies in flight at the kill (at most maxParallelStepsPerRun = 10), and those that had returned but
            // whose checkpoint was still queued on the run's thread (a body's permit is freed before its checkpoint): at most 20
            again.isEmpty() shouldBe false
            again.size shouldBeLessThanOrEqual 20
            again.keys.forEach { key -> log.pidsOf(key)[1] shouldNotBe killed.toString() } // re-run by the new worker
            log.counts.values.forEach { it shouldBeLessThanOrEqual 2 }
        }
    }

    test("the poison guard fails a run that keeps killing its worker") {
        val dir = Files.createTempDirectory("stent-poison").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            stent.client.startByName<String, String>("halt", "", id = "p")
            var last: Process? = null
            try {
                repeat(3) {
                    if (stent.statusOf("p") != RunStatus.FAILED) {
                        last = startWorkerProcess(db, dir, concurrency = 1, leaseMs = 1000, maxClaims = 2)
                        eventually("the worker dies or fails the run", 30.seconds) {
                            !last!!.isAlive || stent.statusOf("p") == RunStatus.FAILED
                        }
                    }
                }
                val e = shouldThrow<WorkflowFailedException> { stent.client.await("p", codecOf<String>(), 30.seconds) }
                e.failure.type shouldBe "dev.stent.PoisonRun"
                e.failure.message!! shouldContain "was claimed 3 times without finishing"
            } finally {
                last?.kill9()
            }
        }
    }

    test("graceful shutdown hands in-flight runs to another worker without losing a step") {
        withStore(store) { stent ->
            val executions = ConcurrentHashMap<String, AtomicInteger>()
            val wf = workflow<String, Int>("handoff") { _ ->
                var sum = 0
                for (i in 1..10) {
                    sum += step("s$i") {
                        executions.computeIfAbsent(stepId) { AtomicInteger() }.incrementAndGet()
                        delay(150.milliseconds)
                        i
                    }
                }
                sum
            }
            val a = stentWorker(stent) { register(wf) }
            stent.client.start(wf, "", id = "h")
            eventually("three steps are recorded") { stent.client.describe("h").records.size >= 3 }
            a.shutdown(grace = 50.milliseconds)
            val released = stent.client.describe("h")
            released.status shouldBe RunStatus.PENDING
            released.leaseOwner shouldBe null
            stentWorker(stent) { register(wf) }.use {
                stent.client.await("h", codecOf<Int>(), 20.seconds) shouldBe 55
            }
            stent.client.describe("h").records.map { it.id } shouldBe (1..10).map { "s$it" }
            executions.keys shouldBe (1..10).map { "s$it" }.toSet()
            // only the step in flight at the shutdown may have run twice
            executions.values.sumOf { it.get() } shouldBeLessThanOrEqual 11
            executions.values.count { it.get() > 1 } shouldBeLessThanOrEqual 1
        }
    }

    test("a cancel accepted while the run's worker is frozen survives its kill: the next claim cancels it without running a step") {
        val dir = Files.createTempDirectory("stent-cancel").toFile()
        val db = store.newDb()
        db.open().use { stent ->
            File(dir, "block").writeText("hang in s3")
            val owner = startWorkerProcess(db, dir, concurrency = 1, leaseMs = 1500)
            try {
                stent.client.startByName<String, String>("crash-five", "", id = "cx")
                eventually("step s3 is in flight") { ExecutionLog(dir).count("cx", "s3") == 1 }
                owner.signal("STOP") // it cannot hear the cancel
                stent.client.cancel("cx") shouldBe RunStatus.RUNNING // accepted: flagged for the owner
            } finally {
                owner.kill9() // SIGKILL reaches a stopped process: it dies before it learns of the cancel
            }
            File(dir, "block").delete()
            val next = startWorkerProcess(db, dir, concurrency = 1, leaseMs = 1500)
            try {
                shouldThrow<WorkflowCancelledException> { stent.client.await("cx", codecOf<String>(), 60.seconds) }
            } finally {
                next.kill9()
            }
            val log = ExecutionLog(dir)
            (1..5).map { log.count("cx", "s$it") } shouldBe listOf(1, 1, 1, 0, 0) // s3 was not run again, s4 never
            stent.client.describe("cx").records.map { it.id } shouldBe listOf("s1", "s2")
        }
    }
})

class SqliteCrashRecoverySpec : CrashRecoverySuite(TestStore.Sqlite)

class PostgresCrashRecoverySpec : CrashRecoverySuite(TestStore.Postgres)
