package dev.stent.bench

import dev.stent.Stent
import dev.stent.exposed.Stents
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

    /** Brings the planner's statistics up to date after a bulk load (autovacuum would, a little later). */
    fun analyze() = raw().use { c -> c.createStatement().use { it.execute("ANALYZE") } }

    /** PostgreSQL: the server's write-ahead log position in bytes (diff two for the WAL written between them); SQLite: null. */
    fun walBytes(): Long? = if (store != "postgres") null else raw().use { c ->
        c.createStatement().executeQuery("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").use { rs -> rs.next(); rs.getLong(1) }
    }

    /** PostgreSQL: the bytes of [table] (heap and TOAST) and of its indexes; SQLite: nulls (one file holds everything). */
    fun tableAndIndexBytes(table: String): Pair<Long?, Long?> = if (store != "postgres") null to null else raw().use { c ->
        c.createStatement().executeQuery("SELECT pg_table_size('$table'), pg_indexes_size('$table')").use { rs -> rs.next(); rs.getLong(1) to rs.getLong(2) }
    }
}

/** Opens [BenchDb]s: SQLite files in a temp directory, and schemas of one PostgreSQL server. */
class BenchStores(private val pgUrlOverride: String?, private val pgStatements: Boolean = false) : AutoCloseable {
    private val dir: File = Files.createTempDirectory("stent-bench").toFile()
    private val n = AtomicInteger()
    private var embedded: EmbeddedPostgres? = null

    /** The PostgreSQL server: `STENT_BENCH_PG_URL`, or an embedded PostgreSQL 17 with durable commits. */
    val pgUrl: String by lazy {
        pgUrlOverride ?: EmbeddedPostgres.builder().setServerConfig("max_connections", "300")
            // zonky turns synchronous_commit off by default; the bench measures durable commits, as production runs them
            .setServerConfig("synchronous_commit", "on")
            .apply { if (pgStatements) setServerConfig("shared_preload_libraries", "pg_stat_statements") }
            .apply {
                // STENT_BENCH_PG_CONFIG="name=value,…" adds server settings, e.g. auto_explain's to log slow plans
                System.getenv("STENT_BENCH_PG_CONFIG")?.split(',')?.filter { '=' in it }
                    ?.forEach { setServerConfig(it.substringBefore('=').trim(), it.substringAfter('=').trim()) }
            }
            .start().also { embedded = it }
            .getJdbcUrl("postgres", "postgres")
            .also { url -> if (pgStatements) admin(url) { it.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements") } }
    }

    private fun <T> admin(url: String = pgUrl, block: (java.sql.Statement) -> T): T =
        DriverManager.getConnection(url, pgUser, pgPassword).use { c -> c.createStatement().use(block) }

    /** With `--pg-statements`: forgets the server's statement statistics, before a measured phase. */
    fun resetPgStatements() {
        if (pgStatements) admin { it.execute("SELECT pg_stat_statements_reset()") }
    }

    /** With `--pg-statements`: the statements the server ran since [resetPgStatements], by total time, as text. */
    fun pgStatementsReport(label: String): String? = if (!pgStatements) null else admin { st ->
        st.executeQuery(
            """SELECT calls, total_exec_time, mean_exec_time, rows, wal_bytes, regexp_replace(query, '\s+', ' ', 'g') AS q
               FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 12""",
        ).use { rs ->
            buildString {
                appendLine("pg statements during $label (calls, total ms, mean µs, rows, WAL bytes, statement):")
                while (rs.next()) {
                    appendLine(
                        String.format(
                            java.util.Locale.ROOT, "%8d %9.1f %8.1f %8d %10d  %s", rs.getLong(1), rs.getDouble(2),
                            rs.getDouble(3) * 1000, rs.getLong(4), rs.getLong(5), rs.getString(6).take(150),
                        ),
                    )
                }
            }
        }
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
