package dev.stent.it

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.codecOf
import dev.stent.exposed.postgres
import dev.stent.startByName
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.withClue
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeIn
import io.kotest.matchers.collections.shouldHaveSize
import io.kotest.matchers.ints.shouldBeGreaterThan
import io.kotest.matchers.ints.shouldBeLessThanOrEqual
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import io.kotest.matchers.string.shouldEndWith
import io.kotest.matchers.string.shouldNotContain
import io.kotest.matchers.types.shouldBeInstanceOf
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.withContext
import java.io.File
import java.nio.file.Files
import java.sql.DriverManager
import java.util.concurrent.CyclicBarrier
import kotlin.concurrent.thread
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

/** What only PostgreSQL has to prove: many JVMs at scale, zombies, restarts, concurrent migration, LISTEN/NOTIFY. */
class PostgresOperationsSpec : FunSpec({

    test("20,000 runs due, 20,000 asleep, statistics from before they fell due: the claim walks its index and reads no table whole") {
        val db = TestStore.Postgres.newDb()
        db.open().use { stent ->
            @OptIn(dev.stent.InternalStentApi::class)
            val store = stent.store
            for (b in 0 until 40) {
                store.createRuns((0 until 1000).map { i -> dev.stent.store.NewRun("p-$b-$i", "planned", "0", "default", 0, 31_536_000_000) })
            }
            DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { c ->
                c.createStatement().use {
                    // the planner's statistics see every run asleep; then half of them fall due at once
                    it.execute("ANALYZE ${db.processArgs[4]}.stent_runs")
                    val now = System.currentTimeMillis() - 1
                    it.executeUpdate("UPDATE ${db.processArgs[4]}.stent_runs SET ready_at = $now WHERE CAST(split_part(id, '-', 2) AS INT) % 2 = 0")
                }
            }
            @OptIn(dev.stent.InternalStentApi::class)
            val plan = dev.stent.exposed.Stents.explainClaim(stent, dev.stent.store.ClaimRequest("w", listOf("planned"), emptyList(), 64, 30_000))
            withClue(plan) {
                plan shouldNotContain "Seq Scan on stent_runs"
                plan shouldNotContain "Sort Key: stent_runs_2.priority"
                plan shouldContain "Index Scan using stent_runs_ready"
                // the update took exactly the 64 runs it picked (then the explain rolled back)
                plan.lines().first() shouldContain "rows=64"
            }
            store.getRun("p-0-0")!!.status shouldBe RunStatus.PENDING
        }
    }

    test("4 worker JVMs, 1,000 workflows x 5 steps, one killed with kill -9 midway and restarted: every step once") {
        val dir = Files.createTempDirectory("stent-pg4").toFile()
        val db = TestStore.Postgres.newDb()
        db.open().use { stent ->
            val workers = MutableList(4) { startWorkerProcess(db, dir, concurrency = 8) }
            try {
                val ids = (1..1000).map { "r$it" }
                ids.forEach { stent.client.startByName<String, String>("crash-five", "", id = it) }
                eventually("a third of the steps ran", 120.seconds) { ExecutionLog(dir).counts.size > 1700 }
                val victim = workers[0]
                val victimPid = victim.pid().toString()
                victim.kill9()
                workers[0] = startWorkerProcess(db, dir, concurrency = 8)
                coroutineScope { ids.map { async { stent.client.await(it, codecOf<String>(), 5.minutes) } }.awaitAll() }
                    .toSet() shouldBe setOf("ok")
                val log = ExecutionLog(dir)
                log.counts.size shouldBe 5000
                val rerun = log.counts.filterValues { it > 1 }
                rerun.values.toSet().forEach { it shouldBe 2 }
                // only steps in flight at the kill ran again: at most one per run the victim held
                rerun.size shouldBeLessThanOrEqual 8
                rerun.keys.forEach { key -> log.pidsOf(key).first() shouldBe victimPid }
                for (i in listOf(1, 500, 1000)) {
                    val info = stent.client.describe("r$i")
                    info.status shouldBe RunStatus.COMPLETED
                    info.records.map { it.id } shouldBe (1..5).map { "s$it" }
                }
                DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { c ->
                    c.createStatement().executeQuery(
                        "SELECT count(*), count(DISTINCT (run_id, step_id)) FROM ${db.processArgs[4]}.stent_records",
                    ).use { rs ->
                        rs.next()
                        rs.getInt(1) shouldBe 5000
                        rs.getInt(2) shouldBe 5000
                    }
                }
            } finally {
                workers.forEach { it.kill9() }
            }
        }
    }

    test("a zombie frozen past its lease with a write in flight: the late write reaches the database and the fence refuses it") {
        val dir = Files.createTempDirectory("stent-zombie").toFile()
        val db = TestStore.Postgres.newDb()
        db.open().use { stent ->
            // the zombie's checkpoint of s3 waits inside the store call, before the database, until `release` exists
            val zombie = startWorkerProcess(db, dir, concurrency = 1, leaseMs = 1500, properties = mapOf("stent.test.holdCheckpoint" to "s3"))
            var successor: Process? = null
            val writes = File(dir, "writes.log")
            try {
                stent.client.startByName<String, String>("crash-five", "", id = "z")
                eventually("the zombie's write of s3 is in flight") { linesOf(writes).contains("H z s3") }
                zombie.signal("STOP")
                successor = startWorkerProcess(db, dir, concurrency = 1, leaseMs = 1500)
                stent.client.await("z", codecOf<String>(), 60.seconds) shouldBe "ok"
                File(dir, "release").writeText("")
                zombie.signal("CONT")
                eventually("the zombie's late write was answered") { linesOf(writes).any { it.startsWith("z s3 ") } }
                // token 1 was the zombie's claim; the database refused the write because the successor holds token 2
                linesOf(writes).single { it.startsWith("z s3 ") } shouldBe "z s3 1 LEASE_LOST"
                val info = stent.client.describe("z")
                info.status shouldBe RunStatus.COMPLETED
                info.records.forEach { it.result!! shouldEndWith "-${if (it.id < "s3") zombie.pid() else successor.pid()}\"" }
                val log = ExecutionLog(dir)
                log.pidsOf("z:s3") shouldBe listOf(zombie.pid().toString(), successor.pid().toString())
                log.count("z", "s4") shouldBe 1
            } finally {
                zombie.signal("CONT")
                zombie.kill9()
                successor?.kill9()
            }
        }
    }

    test("PostgreSQL stopped and restarted under load: every run still finishes") {
        val pg = RestartablePg().also { it.start() }
        try {
            val schema = "restart"
            val open = { Stent.postgres(pg.url, "postgres", "", schema = schema, poolSize = 4) }
            open().use { stent ->
                val wf = workflow<Int, Int>("steady") { n ->
                    var sum = 0
                    for (i in 1..5) sum += step("s$i") { delay(30.milliseconds); i }
                    sum + n
                }
                val workers = List(2) { stentWorker(stent) { register(wf); concurrency = 16; leaseDuration = 3.seconds } }
                try {
                    val runs = (1..100).map { stent.client.start(wf, it, id = "p$it") }
                    eventually("some runs finished") { stent.client.describe("p1").status == RunStatus.COMPLETED }
                    // under load: the server goes down while runs are in flight
                    val unfinished = stent.client.list(limit = 200).count { !it.status.isFinished }
                    unfinished shouldBeGreaterThan 0
                    withContext(Dispatchers.IO) { pg.stop() }
                    delay(2.seconds)
                    withContext(Dispatchers.IO) { pg.start() }
                    runs.mapIndexed { i, run -> run.await(2.minutes) shouldBe 15 + i + 1 }
                } finally {
                    workers.forEach { it.close() }
                }
                for (i in 1..100) stent.client.describe("p$i").status shouldBe RunStatus.COMPLETED
            }
        } finally {
            pg.stop()
        }
    }

    test("8 workers starting at once on an empty database migrate the schema exactly once") {
        val schema = "migrate_${System.nanoTime()}"
        val barrier = CyclicBarrier(8)
        val errors = java.util.concurrent.ConcurrentLinkedQueue<Throwable>()
        val stents = java.util.concurrent.ConcurrentLinkedQueue<Stent>()
        (1..8).map {
            thread {
                barrier.await()
                try {
                    stents += Stent.postgres(TestPg.url, TestPg.user, TestPg.password, schema = schema, poolSize = 2)
                } catch (e: Throwable) {
                    errors += e
                }
            }
        }.forEach { it.join() }
        try {
            errors.toList() shouldBe emptyList()
            stents shouldHaveSize 8
            DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { c ->
                c.createStatement().executeQuery("SELECT version FROM $schema.stent_schema_version").use { rs ->
                    val versions = generateSequence { if (rs.next()) rs.getInt(1) else null }.toList()
                    // each migration once, in order
                    versions shouldBe (1..dev.stent.exposed.internal.Migrations.latest).toList()
                }
            }
        } finally {
            stents.forEach { it.close() }
        }
    }

    /** A worker JVM that polls only once a minute, so only a wake-up can make it claim within the test's window. */
    suspend fun wakeUpWindow(notifications: Boolean): Result<String> {
        val dir = Files.createTempDirectory("stent-wake").toFile()
        val db = TestStore.Postgres.newDb()
        return db.open().use { client ->
            val props = mapOf("stent.test.pollMs" to "60000") + (if (notifications) emptyMap() else mapOf("stent.test.notify" to "off"))
            val worker = startWorkerProcess(db, dir, concurrency = 1, properties = props)
            try {
                delay(500.milliseconds) // its first claim found nothing; from now on it sleeps for a minute unless woken
                runCatching { client.client.startByName<String, String>("crash-five", "", id = "n").await(5.seconds) }
            } finally {
                worker.kill9()
            }
        }
    }

    test("LISTEN/NOTIFY wakes an idle worker in another JVM that polls once a minute") {
        wakeUpWindow(notifications = true).getOrThrow() shouldBe "ok"
    }

    test("with notifications off, the same worker does not run the workflow within the window (the test above cannot pass by polling)") {
        wakeUpWindow(notifications = false).exceptionOrNull().shouldBeInstanceOf<dev.stent.AwaitTimeoutException>()
    }

    // The claim of a limited queue relies on it: its queue lock and its claim go in one round trip (see Claims.kt).
    test("statements sent together on an autocommit connection are one transaction: the first one's lock holds through the last") {
        val schema = "implicit_${System.nanoTime()}"
        DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { setup ->
            setup.createStatement().execute("CREATE SCHEMA $schema; CREATE TABLE $schema.q (name TEXT PRIMARY KEY); INSERT INTO $schema.q VALUES ('a')")
        }
        DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { a ->
            DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { b ->
                a.autoCommit shouldBe true
                val holder = thread {
                    a.prepareStatement("SELECT name FROM $schema.q WHERE name = ? FOR UPDATE; SELECT pg_sleep(1.5)").use { ps ->
                        ps.setString(1, "a")
                        ps.execute()
                        while (ps.moreResults || ps.updateCount != -1) Unit
                    }
                }
                Thread.sleep(500)
                val refused = runCatching { b.createStatement().executeQuery("SELECT name FROM $schema.q FOR UPDATE NOWAIT").close() }.exceptionOrNull()
                (refused as java.sql.SQLException).sqlState shouldBe "55P03" // lock_not_available: still held by the first statement
                holder.join()
                b.createStatement().executeQuery("SELECT name FROM $schema.q FOR UPDATE NOWAIT").use { it.next() shouldBe true } // released at the end
            }
        }
    }
})
