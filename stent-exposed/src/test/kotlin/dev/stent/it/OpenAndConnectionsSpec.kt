package dev.stent.it

import com.zaxxer.hikari.HikariConfig
import com.zaxxer.hikari.HikariDataSource
import dev.stent.StentStoreException
import dev.stent.exposed.Stents
import dev.stent.exposed.internal.Migrations
import dev.stent.exposed.internal.SqliteStatements
import dev.stent.exposed.postgres
import dev.stent.exposed.sqlite
import dev.stent.Stent
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import org.postgresql.PGConnection
import java.io.File
import java.nio.file.Files
import java.sql.DriverManager
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
