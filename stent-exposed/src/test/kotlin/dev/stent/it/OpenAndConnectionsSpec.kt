package dev.stent.it

import com.zaxxer.hikari.HikariConfig
import com.zaxxer.hikari.HikariDataSource
import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentStoreException
import dev.stent.exposed.Stents
import dev.stent.exposed.internal.Migrations
import dev.stent.exposed.internal.PostgresDialect
import dev.stent.exposed.internal.SqliteDialect
import dev.stent.exposed.internal.SqliteStatements
import dev.stent.exposed.postgres
import dev.stent.exposed.sqlite
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import org.jetbrains.exposed.v1.jdbc.Database
import org.postgresql.PGConnection
import java.io.File
import java.nio.file.Files
import java.sql.DriverManager
import java.time.Instant
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.seconds

/** Opening a store that cannot be opened, and the connections Stent borrows and gives back. */
class OpenAndConnectionsSpec : FunSpec({

    test("a database whose schema is newer than this Stent is refused at open, with the fix") {
        for (store in listOf(TestStore.Sqlite, TestStore.Postgres)) {
            val db = store.newDb()
            db.open().close()
            db.connect().use { c ->
                c.createStatement().use { it.execute("INSERT INTO stent_schema_version (version, applied_at) VALUES (${Migrations.latest + 1}, 0)") }
            }
            val e = shouldThrow<StentStoreException> { db.open() }
            e.message!! shouldContain "the database schema is version ${Migrations.latest + 1}, newer than this Stent's ${Migrations.latest}: upgrade Stent"
        }
    }

    test("a SQLite path whose directory cannot be created or written is a clear error naming the file") {
        val notADirectory = Files.createTempFile("stent", ".txt").toFile()
        val path = File(notADirectory, "sub/stent.db").path
        val e = shouldThrow<StentStoreException> { Stent.sqlite(path) }
        e.message!! shouldContain "cannot open the SQLite file '$path'"
    }

    test("PostgreSQL with a role that does not exist, or a port nobody listens on, is a clear error naming the URL and the user") {
        val noRole = shouldThrow<StentStoreException> { Stent.postgres(TestPg.url, "no_such_role", "wrong") }
        noRole.message!! shouldContain "cannot connect to PostgreSQL at ${TestPg.url} as 'no_such_role'"
        noRole.message!! shouldContain "no_such_role"
        val closedPort = "jdbc:postgresql://127.0.0.1:1/postgres"
        shouldThrow<StentStoreException> { Stent.postgres(closedPort, "postgres", "") }.message!! shouldContain
            "cannot connect to PostgreSQL at $closedPort as 'postgres'"
    }

    test("Stent on your own DataSource gives its LISTEN connection back unlistened, on close") {
        val schema = "own_ds_${System.nanoTime()}"
        val ds = HikariDataSource(
            HikariConfig().apply {
                jdbcUrl = TestPg.url
                username = TestPg.user
                password = TestPg.password
                maximumPoolSize = 3
                minimumIdle = 3
            },
        )
        ds.use {
            Stents.postgres(ds, schema, 1).use { stent ->
                val wf = workflow<String, String>("echo") { s -> step("s") { s } }
                stentWorker(stent) { register(wf) }.use { stent.client.start(wf, "hi", id = "e").await(10.seconds) shouldBe "hi" }
            }
            // every pooled connection: none listens, and a NOTIFY on Stent's channel is not buffered on any
            val all = List(3) { ds.connection }
            try {
                DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).use { other ->
                    other.createStatement().use { it.execute("NOTIFY \"stent_$schema\", 'w:'") }
                }
                for (c in all) {
                    c.createStatement().use { st ->
                        st.executeQuery("SELECT pg_listening_channels()").use { rs -> rs.next() shouldBe false }
                    }
                    c.unwrap(PGConnection::class.java).notifications.toList().shouldBeEmpty()
                }
            } finally {
                all.forEach { it.close() }
            }
        }
    }

    test("a database from before the renames (migrations 4 and 5) keeps its runs, records and workers, and a waiting run resumes from its old records") {
        for (store in listOf(TestStore.Sqlite, TestStore.Postgres)) for (from in listOf(3, 4)) {
            val db = store.newDb()
            val (dialect, schema) = if (store == TestStore.Sqlite) SqliteDialect() to null else PostgresDialect to db.processArgs[4]
            Migrations.migrate(Database.connect({ db.connect() }), dialect, schema, upTo = from) shouldBe from
            val records = if (from >= 4) "stent_records" else "stent_steps"
            val now = System.currentTimeMillis() // a worker row not seen for days is forgotten when the next worker registers
            db.connect().use { c ->
                fun insert(sql: String, vararg args: Any?) = c.prepareStatement(sql).use { ps ->
                    args.forEachIndexed { i, a -> ps.setObject(i + 1, a) }
                    ps.executeUpdate()
                }
                val run = """INSERT INTO stent_runs (id, workflow, status, input, output, queue, priority, ready_at, lease_token, claim_count,
                             cancel_requested, created_at, started_at, updated_at, completed_at) VALUES (?, 'old', ?, ?, ?, 'default', 0, ?, ?, 0, ?, 1000, ?, 1200, ?)"""
                insert(run, "done", "COMPLETED", "1", "\"a/b\"", null, 1L, false, 1100L, 1200L)
                insert(run, "paused", "PENDING", "2", null, 0L, 1L, false, 1100L, null)
                val record = """INSERT INTO $records (run_id, step_id, kind, status, result, attempts, created_at, updated_at)
                                VALUES (?, ?, 'STEP', 'COMPLETED', ?, 1, 1100, 1100)"""
                insert(record, "done", "a", "\"a\"")
                insert(record, "paused", "a", "\"from before\"")
                insert("INSERT INTO stent_workers (id, workflows, lease_ms, started_at, last_seen_at) VALUES ('w-old', '[\"old\"]', 30000, ?, ?)", now, now)
            }
            db.open().use { stent ->
                val done = stent.client.describe("done")
                done.workflowName shouldBe "old"
                done.status shouldBe RunStatus.COMPLETED
                done.finishedAt shouldBe Instant.ofEpochMilli(1200)
                done.records.map { it.id to it.result } shouldBe listOf("a" to "\"a\"")
                val ran = AtomicInteger()
                val old = workflow<Int, String>("old") { step("a") { ran.incrementAndGet(); "again" } + "/" + step("b") { "b" } }
                stentWorker(stent) { register(old) }.use {
                    stent.client.handle("paused", old.outputCodec).await(10.seconds) shouldBe "from before/b"
                }
                ran.get() shouldBe 0
                stent.client.describe("paused").records.map { it.id } shouldBe listOf("a", "b")
            }
            db.connect().use { c ->
                c.createStatement().use { st ->
                    st.executeQuery("SELECT workflow_names FROM stent_workers WHERE id = 'w-old'").use { it.next(); it.getString(1) } shouldBe "[\"old\"]"
                    st.executeQuery("SELECT MAX(version) FROM stent_schema_version").use { it.next(); it.getInt(1) } shouldBe Migrations.latest
                }
            }
        }
    }

    test("the SQLite statement cache lets go of a connection the pool retired") {
        val cache = SqliteStatements()
        val path = Files.createTempDirectory("stmts").resolve("s.db").toString()
        val first = DriverManager.getConnection("jdbc:sqlite:$path")
        cache.wrap(first).prepareStatement("SELECT 1").use { it.executeQuery().close() }
        cache.cachedConnections() shouldBe 1
        first.close()
        val second = DriverManager.getConnection("jdbc:sqlite:$path")
        second.use { cache.wrap(it).prepareStatement("SELECT 1").use { ps -> ps.executeQuery().close() } }
        cache.cachedConnections() shouldBe 1 // the closed one's cache is gone
    }
})
