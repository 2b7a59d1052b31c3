package dev.stent.bench

import dev.stent.Stent
import dev.stent.Stents
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres
import org.sqlite.SQLiteConfig
import java.io.File
import java.nio.file.Files
import java.sql.Connection
import java.sql.DriverManager
import java.util.concurrent.atomic.AtomicInteger

/** One fresh database for one scenario: how the bench opens it, how worker JVMs do, and a raw JDBC connection. */
class BenchDb(val store: String, val processArgs: List<String>, private val opener: () -> Stent, val raw: () -> Connection, val sizeBytes: () -> Long) {
    fun open(): Stent = opener()
}

/** Opens [BenchDb]s: SQLite files in a temp directory, and schemas of one PostgreSQL server. */
class BenchStores(private val pgUrlOverride: String?) : AutoCloseable {
    private val dir: File = Files.createTempDirectory("stent-bench").toFile()
    private val n = AtomicInteger()
    private var embedded: EmbeddedPostgres? = null

    /** The PostgreSQL server: `STENT_BENCH_PG_URL`, or an embedded PostgreSQL 17 with its default (durable) settings. */
    val pgUrl: String by lazy {
        pgUrlOverride ?: EmbeddedPostgres.builder().setServerConfig("max_connections", "300").start().also { embedded = it }
            .getJdbcUrl("postgres", "postgres")
    }
    val pgUser: String get() = System.getenv("STENT_BENCH_PG_USER") ?: "postgres"
    val pgPassword: String get() = System.getenv("STENT_BENCH_PG_PASSWORD") ?: ""

    fun sqlite(): BenchDb {
        val path = File(dir, "bench-${n.incrementAndGet()}.db").path
        return BenchDb("sqlite", listOf("sqlite", path), { Stents.sqlite(path) }, {
            // the same durability settings Stent uses
            SQLiteConfig().apply {
                setJournalMode(SQLiteConfig.JournalMode.WAL)
                setSynchronous(SQLiteConfig.SynchronousMode.FULL)
                setBusyTimeout(30_000)
            }.createConnection("jdbc:sqlite:$path")
        }, { listOf("", "-wal").sumOf { File(path + it).length() } })
    }

    fun postgres(): BenchDb {
        val schema = "bench_${n.incrementAndGet()}"
        return BenchDb("postgres", listOf("postgres", pgUrl, pgUser, pgPassword, schema), {
            Stents.postgres(pgUrl, pgUser, pgPassword, schema = schema, poolSize = 16)
        }, {
            DriverManager.getConnection(pgUrl, pgUser, pgPassword).also { c ->
                c.createStatement().use { it.execute("CREATE SCHEMA IF NOT EXISTS $schema") }
                c.schema = schema
            }
        }, {
            DriverManager.getConnection(pgUrl, pgUser, pgPassword).use { c ->
                c.createStatement().executeQuery(
                    "SELECT COALESCE(SUM(pg_total_relation_size(quote_ident(schemaname) || '.' || quote_ident(tablename))), 0) " +
                        "FROM pg_tables WHERE schemaname = '$schema'",
                ).use { rs -> rs.next(); rs.getLong(1) }
            }
        })
    }

    /** A fresh database for DBOS, which keeps its own system tables. */
    fun dbosDatabase(name: String): String {
        DriverManager.getConnection(pgUrl, pgUser, pgPassword).use { c ->
            c.createStatement().use { it.execute("DROP DATABASE IF EXISTS $name"); it.execute("CREATE DATABASE $name") }
        }
        return pgUrl.replace(Regex("/[^/?]+(\\?|$)"), "/$name$1")
    }

    override fun close() {
        embedded?.close()
        dir.deleteRecursively()
    }

    companion object {
        fun openFromArgs(args: List<String>): Stent = when (args[0]) {
            "sqlite" -> Stents.sqlite(args[1])
            else -> Stents.postgres(args[1], args[2], args[3], schema = args[4], poolSize = 16)
        }
    }
}
