@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent.it

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.StentOptions
import dev.stent.WorkflowFailedException
import dev.stent.codecOf
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.store.CheckpointWrite
import dev.stent.store.ClaimRequest
import dev.stent.store.NewRun
import dev.stent.store.StoredRecord
import dev.stent.store.WriteOutcome
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.assertions.throwables.shouldThrowAny
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.ints.shouldBeGreaterThanOrEqual
import io.kotest.matchers.longs.shouldBeGreaterThan
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import io.kotest.matchers.string.shouldEndWith
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.withContext
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Faults injected where recovery lives, on a real database: each recovery path ends with every run finished or failed on purpose. */
abstract class FaultInjectionSuite(store: TestStore) : FunSpec({

    fun counter() = ConcurrentHashMap<String, AtomicInteger>()
    fun ConcurrentHashMap<String, AtomicInteger>.hit(key: String) = computeIfAbsent(key) { AtomicInteger() }.incrementAndGet()
    fun ConcurrentHashMap<String, AtomicInteger>.count(key: String) = get(key)?.get() ?: 0

    test("a checkpoint that always fails backs off and trips the poison guard: no hot loop") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        db.open { FaultyStore(it).also { f -> faulty = f } }.use { stent ->
            faulty.beforeCheckpoint = { if (it.record.stepId == "charge") throw FaultyStore.dbError("charge is refused") }
            val runs = AtomicInteger()
            val wf = workflow<String, String>("poisoned-write") { _ -> step("charge") { runs.incrementAndGet(); "charged" } }
            stentWorker(stent) { register(wf); maxClaims = 2; pollInterval = 50.milliseconds }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "", id = "pw").await(30.seconds) }
                e.failure.type shouldBe "dev.stent.PoisonRun"
                e.failure.message!! shouldContain "could not write"
            }
            // two claims ran the body and failed to record it (each tried twice: with the finish, then alone); the third failed the run without running it
            runs.get() shouldBe 2
            faulty.checkpointCalls.get() shouldBe 4
            val info = stent.client.describe("pw")
            // released with a back-off of 1 s after the first failure: the claims were not back to back
            info.finishedAt!!.toEpochMilli() - info.createdAt.toEpochMilli() shouldBeGreaterThan 1_000
        }
    }

    test("a one-step run started beside a worker with a free slot costs two writes: created claimed, finished with its step") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        db.open { FaultyStore(it).also { f -> faulty = f } }.use { stent ->
            val claimed = CountDownLatch(1)
            faulty.aroundClaim = { real -> real().also { claimed.countDown() } }
            val wf = workflow<String, String>("two-writes") { x -> step("s") { "$x!" } }
            stentWorker(stent) { register(wf) }.use {
                // a worker takes starts only once a claim found no older ready run
                claimed.await(10, TimeUnit.SECONDS) shouldBe true
                delay(100.milliseconds)
                stent.client.start(wf, "a", id = "tw").await(10.seconds) shouldBe "a!"
            }
            faulty.claimedRuns.get() shouldBe 0
            // its one checkpoint went with the finish
            faulty.checkpointCalls.get() shouldBe 1
            faulty.foldedRecords.get() shouldBe 1
            stent.store.getRun("tw")!!.status shouldBe RunStatus.COMPLETED
            stent.client.describe("tw").records.map { it.id to it.status } shouldBe listOf("s" to RecordStatus.COMPLETED)
        }
    }

    test("a step completed a moment ago is written before the next step's body begins") {
        val db = store.newDb()
        db.open().use { stent ->
            val wf = workflow<String, List<String>>("written-first") { _ ->
                step("a") { "1" }
                step("b") { stent.store.listRecords(runId).map { it.stepId } }
            }
            stentWorker(stent) { register(wf) }.use {
                stent.client.start(wf, "", id = "wf1").await(10.seconds) shouldBe listOf("a")
            }
        }
    }

    test("the second checkpoint fails once: the run is given back with that step written by a second try, and no step runs twice") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        db.open { FaultyStore(it).also { f -> faulty = f } }.use { stent ->
            val failed = AtomicBoolean()
            faulty.beforeCheckpoint = { if (it.record.stepId == "s2" && failed.compareAndSet(false, true)) throw FaultyStore.dbError("once") }
            val runs = counter()
            val wf = workflow<String, String>("flaky-db") { _ ->
                val parts = mutableListOf<String>()
                for (i in 1..3) parts += step("s$i") { runs.hit("s$i"); "$i" }
                parts.joinToString(",")
            }
            stentWorker(stent) { register(wf); pollInterval = 50.milliseconds }.use {
                stent.client.start(wf, "", id = "fd").await(30.seconds) shouldBe "1,2,3"
            }
            // the run stopped on the failure and, before its release, wrote s2 again: the database answered this time
            failed.get() shouldBe true
            listOf(runs.count("s1"), runs.count("s2"), runs.count("s3")) shouldBe listOf(1, 1, 1)
            stent.client.describe("fd").records.map { it.id } shouldBe listOf("s1", "s2", "s3")
        }
    }

    test("shutdown while a claim is in flight: the claimed run is released, not orphaned under a worker that is gone") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        db.open { FaultyStore(it).also { f -> faulty = f } }.use { stent ->
            val wf = workflow<String, String>("claimed-late") { _ -> step("s") { "ran" } }
            stent.client.start(wf, "", id = "cl")
            val claimedIt = CountDownLatch(1)
            val release = CountDownLatch(1)
            faulty.aroundClaim = { real ->
                real().also { result -> if (result.runs.isNotEmpty()) { claimedIt.countDown(); release.await(30, TimeUnit.SECONDS) } }
            }
            val worker = stentWorker(stent) { register(wf) }
            withContext(Dispatchers.IO) { claimedIt.await(20, TimeUnit.SECONDS) } shouldBe true
            coroutineScope {
                val stopping = async { worker.shutdown(grace = 5.seconds) }
                delay(300.milliseconds) // let the shutdown begin while the claim is still in flight (either order must end released)
                release.countDown()
                stopping.await()
            }
            val info = stent.client.describe("cl")
            info.status shouldBe RunStatus.PENDING
            info.leaseOwner shouldBe null
            faulty.aroundClaim = { it() }
            stentWorker(stent) { register(wf) }.use { stent.client.await("cl", codecOf<String>(), 20.seconds) shouldBe "ran" }
        }
    }

    test("heartbeats failing for longer than a lease: the worker stops the run, never runs it twice at once, and the poison guard ends it") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        db.open { FaultyStore(it).also { f -> faulty = f } }.use { stent ->
            faulty.beforeHeartbeat = { throw FaultyStore.dbError("heartbeat refused") }
            val running = AtomicInteger()
            val maxRunning = AtomicInteger()
            val interrupted = AtomicInteger()
            val wf = workflow<String, String>("unrenewed") { _ ->
                step("long") {
                    maxRunning.accumulateAndGet(running.incrementAndGet(), ::maxOf)
                    try {
                        Thread.sleep(60_000)
                    } catch (e: InterruptedException) {
                        interrupted.incrementAndGet()
                        throw e
                    } finally {
                        running.decrementAndGet()
                    }
                    "never"
                }
            }
            stentWorker(stent) { register(wf); leaseDuration = 1.seconds; maxClaims = 2; pollInterval = 50.milliseconds }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "", id = "hb").await(60.seconds) }
                e.failure.type shouldBe "dev.stent.PoisonRun"
            }
            maxRunning.get() shouldBe 1
            interrupted.get() shouldBeGreaterThanOrEqual 1 // the first body was interrupted; later claims may be stopped before their body starts
            stent.client.describe("hb").records.shouldBeEmpty()
        }
    }

    test("a finish or an unload that fails: the run is claimed again and ends without running its steps again") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        db.open { FaultyStore(it).also { f -> faulty = f } }.use { stent ->
            val finishFailed = AtomicBoolean()
            val unloadFailed = AtomicBoolean()
            faulty.beforeFinish = { id, _ -> if (id == "fin" && finishFailed.compareAndSet(false, true)) throw FaultyStore.dbError("finish") }
            faulty.beforeUnload = { id -> if (id == "unl" && unloadFailed.compareAndSet(false, true)) throw FaultyStore.dbError("unload") }
            val runs = counter()
            val finishing = workflow<String, String>("fin-fails") { _ ->
                step("s1") { runs.hit("fin-1") }
                step("s2") { runs.hit("fin-2"); "done" }
            }
            val unloading = workflow<String, String>("unload-fails") { _ ->
                step("a") { runs.hit("unl-a") }
                sleep(1.seconds, id = "nap")
                step("b") { runs.hit("unl-b"); "woke" }
            }
            stentWorker(stent) {
                register(finishing); register(unloading); leaseDuration = 1.seconds; unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds
            }.use {
                stent.client.start(finishing, "", id = "fin").await(30.seconds) shouldBe "done"
                stent.client.start(unloading, "", id = "unl").await(30.seconds) shouldBe "woke"
            }
            finishFailed.get() shouldBe true
            unloadFailed.get() shouldBe true
            // s1 was written before s2 began; s2's record went with the finish that failed, and was written on its own before the release
            listOf(runs.count("fin-1"), runs.count("fin-2"), runs.count("unl-a"), runs.count("unl-b")) shouldBe listOf(1, 1, 1, 1)
        }
    }

    test("a store call that hangs: its run is no longer renewed, it is taken over, and the late write is fenced out") {
        val db = store.newDb()
        lateinit var faulty: FaultyStore
        val outcomes = Collections.synchronizedList(mutableListOf<WriteOutcome>())
        val hung = CountDownLatch(1)
        val release = CountDownLatch(1)
        val options = StentOptions(storeTimeout = 1.seconds)
        db.open(options) { FaultyStore(it).also { f -> faulty = f } }.use { a ->
            val once = AtomicBoolean()
            faulty.beforeCheckpoint = { w ->
                if (w.runId == "hang" && w.record.stepId == "s1" && once.compareAndSet(false, true)) {
                    hung.countDown()
                    release.await(60, TimeUnit.SECONDS)
                }
            }
            faulty.afterCheckpoint = { w, outcome -> if (w.runId == "hang") outcomes += outcome }
            db.open(options).use { b ->
                // the same workflow in both workers, but each step result names the worker that recorded it
                fun who(worker: String) = workflow<String, String>("who") { _ -> step("s1") { worker } + step("s2") { worker } }
                val workerA = stentWorker(a) { register(who("A")); leaseDuration = 1.seconds; stopTimeout = 500.milliseconds }
                try {
                    a.client.start(who("A"), "", id = "hang")
                    withContext(Dispatchers.IO) { hung.await(20, TimeUnit.SECONDS) } shouldBe true
                    // an unrelated run in the same JVM still finishes while that write hangs
                    a.client.start(who("A"), "", id = "other").await(30.seconds) shouldBe "AA"
                    stentWorker(b) { register(who("B")); leaseDuration = 1.seconds }.use {
                        // taken over by a new claim, of this worker or the other one, while the first write still hangs
                        eventually("the run was taken over and finished", 30.seconds) { b.statusOf("hang") == RunStatus.COMPLETED }
                    }
                    val output = b.client.await("hang", codecOf<String>(), 1.seconds)
                    (output == "AA" || output == "BB") shouldBe true
                    val hungWrite = outcomes.size // the writes of the takeover, all accepted
                    outcomes.all { it == WriteOutcome.OK } shouldBe true
                    release.countDown()
                    eventually("the late write reached the database") { outcomes.size > hungWrite }
                    outcomes.last() shouldBe WriteOutcome.LEASE_LOST // refused by the fence
                    b.client.describe("hang").records.map { it.result } shouldBe List(2) { "\"${output.first()}\"" }
                } finally {
                    release.countDown()
                    workerA.close()
                }
            }
        }
        faulty.checkpointCalls.get() shouldBeGreaterThanOrEqual 1
    }

    test("a group statement with one bad row applies nothing; each good row alone is written") {
        val testDb = store.newDb()
        testDb.open().use { stent ->
            val db = stent.store
            db.createRuns(listOf("g1", "g2", "g3").map { NewRun(it, "wf", "\"\"", "default", 0, 0) })
            val tokens = db.claim(ClaimRequest("w", listOf("wf"), emptyList(), 10, 30_000)).runs.associate { it.id to it.fencingToken }
            testDb.rejectStepId("poison")
            fun write(run: String, step: String) =
                CheckpointWrite(run, tokens.getValue(run), StoredRecord(step, RecordKind.STEP, RecordStatus.COMPLETED, result = "1"))
            shouldThrowAny { db.checkpoints(listOf(write("g1", "ok"), write("g2", "poison"), write("g3", "ok"))) }
            listOf("g1", "g2", "g3").forEach { db.listRecords(it).shouldBeEmpty() }
            // what group commit falls back to: each alone, so only the bad one fails
            db.checkpoint("g1", tokens.getValue("g1"), write("g1", "ok").record) shouldBe WriteOutcome.OK
            shouldThrowAny { db.checkpoint("g2", tokens.getValue("g2"), write("g2", "poison").record) }
            db.checkpoint("g3", tokens.getValue("g3"), write("g3", "ok").record) shouldBe WriteOutcome.OK
            db.listRecords("g1").single().stepId shouldBe "ok"
            db.listRecords("g2").shouldBeEmpty()
        }
    }

    test("a claim whose read of records fails after it committed gives its runs back instead of orphaning them") {
        val db = store.newDb()
        db.open().use { stent ->
            val s = stent.store
            s.createRun(NewRun("rr", "wf", "\"\"", "default", 0, 0))
            val first = s.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 30_000)).runs.single()
            s.release("rr", first.fencingToken) shouldBe WriteOutcome.OK
            db.connect().use { c -> c.createStatement().use { it.execute("ALTER TABLE stent_records RENAME TO stent_steps_away") } }
            try {
                shouldThrowAny { s.claim(ClaimRequest("w2", listOf("wf"), emptyList(), 10, 30_000)) } // token 2: it must read records
            } finally {
                db.connect().use { c -> c.createStatement().use { it.execute("ALTER TABLE stent_steps_away RENAME TO stent_records") } }
            }
            val run = s.getRun("rr")!!
            run.status shouldBe RunStatus.PENDING
            run.leaseOwner shouldBe null
            run.claimCount shouldBe 1 // the failed claim counts toward the poison guard
            run.readyAt!! shouldBeGreaterThan run.updatedAt
        }
    }
})

/** Makes the database itself refuse any record with step id [stepId] (a trigger): a real error inside a real statement. */
fun TestDb.rejectStepId(stepId: String) {
    val sql = when (store) {
        TestStore.Sqlite -> listOf(
            "CREATE TRIGGER reject_$stepId BEFORE INSERT ON stent_records WHEN NEW.step_id = '$stepId' BEGIN SELECT RAISE(ABORT, 'rejected $stepId'); END",
        )
        TestStore.Postgres -> listOf(
            """CREATE FUNCTION reject_$stepId() RETURNS trigger AS ${'$'}${'$'} BEGIN
                 IF NEW.step_id = '$stepId' THEN RAISE EXCEPTION 'rejected $stepId'; END IF; RETURN NEW; END ${'$'}${'$'} LANGUAGE plpgsql""",
            "CREATE TRIGGER reject_$stepId BEFORE INSERT ON stent_records FOR EACH ROW EXECUTE FUNCTION reject_$stepId()",
        )
    }
    connect().use { c -> c.createStatement().use { st -> sql.forEach(st::execute) } }
}

class SqliteFaultInjectionSpec : FaultInjectionSuite(TestStore.Sqlite)

class PostgresFaultInjectionSpec : FaultInjectionSuite(TestStore.Postgres)
