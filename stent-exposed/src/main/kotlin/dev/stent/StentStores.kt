@file:JvmName("StentStores")

package dev.stent

import com.zaxxer.hikari.HikariConfig
import com.zaxxer.hikari.HikariDataSource
import dev.stent.exposed.internal.ExposedStore
import dev.stent.exposed.internal.Migrations
import dev.stent.exposed.internal.SqlDialect
import org.jetbrains.exposed.v1.core.DatabaseConfig
import org.jetbrains.exposed.v1.jdbc.Database
import org.sqlite.SQLiteConfig
import java.io.File
import java.sql.Connection
import java.sql.DriverManager
import javax.sql.DataSource

/**
 * Opens (creating if needed) a Stent store in the SQLite file at [path]: WAL journal, a busy
 * timeout so several processes can share the file, `synchronous=FULL` so a committed checkpoint
 * survives power loss, and every transaction `BEGIN IMMEDIATE`. Applies missing migrations.
 *
 * One connection per process: SQLite has one writer at a time anyway, and queueing in-process
 * beats spinning on the file lock.
 */
@JvmOverloads
public fun Stent.Companion.sqlite(path: String, options: StentOptions = StentOptions()): Stent {
    File(path).absoluteFile.parentFile?.mkdirs()
    val sqlite = SQLiteConfig().apply {
        setJournalMode(SQLiteConfig.JournalMode.WAL)
        setSynchronous(SQLiteConfig.SynchronousMode.FULL)
        setBusyTimeout(30_000)
        setTransactionMode(SQLiteConfig.TransactionMode.IMMEDIATE)
    }
    val hikari = HikariConfig().apply {
        jdbcUrl = "jdbc:sqlite:$path"
        dataSourceProperties = sqlite.toProperties()
        maximumPoolSize = 1
        minimumIdle = 1
        poolName = "stent-sqlite"
        // sqlite-jdbc begins a transaction as soon as autocommit is off: idle connections must not hold the lock
        isAutoCommit = true
    }
    val ds = HikariDataSource(hikari)
    return open(ds, SqlDialect.Sqlite, null, 1, null, ds::close, options)
}

/**
 * Opens a Stent store in the PostgreSQL database at [jdbcUrl] (`jdbc:postgresql://host:5432/db`),
 * through a HikariCP pool of [poolSize] connections, in [schema] (created if missing; default:
 * the connection's search path), and applies missing migrations under an advisory lock, so many
 * workers starting together migrate once. Wake-ups between processes use `LISTEN/NOTIFY` on one
 * extra connection.
 */
@JvmOverloads
public fun Stent.Companion.postgres(
    jdbcUrl: String,
    user: String,
    password: String,
    schema: String? = null,
    poolSize: Int = 10,
    options: StentOptions = StentOptions(),
): Stent {
    require(poolSize >= 1) { "postgres: poolSize must be at least 1, was $poolSize" }
    schema?.let { WorkflowDefinition.validateName("schema", it) }
    val hikari = HikariConfig().apply {
        this.jdbcUrl = jdbcUrl
        username = user
        this.password = password
        maximumPoolSize = poolSize
        minimumIdle = minOf(2, poolSize)
        poolName = "stent-postgres"
        connectionTimeout = 10_000
        if (schema != null) this.schema = schema
    }
    val ds = HikariDataSource(hikari)
    val listen = {
        DriverManager.getConnection(jdbcUrl, user, password).also { c -> schema?.let { c.schema = it } }
    }
    return open(ds, SqlDialect.Postgres, schema, poolSize, listen, ds::close, options)
}

/**
 * Opens a Stent store on a PostgreSQL [dataSource] you own (Stent does not close it). [maxConnections]
 * bounds Stent's concurrent use of it; one more connection is held for `LISTEN/NOTIFY`.
 */
@JvmOverloads
public fun Stent.Companion.postgres(
    dataSource: DataSource,
    schema: String? = null,
    maxConnections: Int = 10,
    options: StentOptions = StentOptions(),
): Stent {
    schema?.let { WorkflowDefinition.validateName("schema", it) }
    val connect = { dataSource.connection.also { c -> schema?.let { c.schema = it } } }
    val scoped = if (schema == null) dataSource else SchemaDataSource(dataSource, schema)
    return open(scoped, SqlDialect.Postgres, schema, maxConnections, connect, {}, options)
}

private fun open(
    dataSource: DataSource,
    dialect: SqlDialect,
    schema: String?,
    maxConnections: Int,
    listen: (() -> Connection)?,
    onClose: () -> Unit,
    options: StentOptions,
): Stent {
    try {
        val db = Database.connect(
            dataSource,
            databaseConfig = DatabaseConfig {
                // no blind retries: a commit that failed ambiguously must not insert a signal twice
                defaultMaxAttempts = 1
            },
        )
        Migrations.migrate(db, dialect, schema)
        val channel = "stent" + (schema?.let { "_$it" } ?: "")
        return Stent(ExposedStore(db, dialect, maxConnections, channel, listen, onClose), options)
    } catch (e: Exception) {
        onClose()
        throw StentStoreException("cannot open the Stent store: ${e.message}", e)
    }
}

/** Sets the schema on every connection of a data source Stent does not own. */
private class SchemaDataSource(private val delegate: DataSource, private val schema: String) : DataSource by delegate {
    override fun getConnection(): Connection = delegate.connection.also { it.schema = schema }
    override fun getConnection(username: String?, password: String?): Connection =
        delegate.getConnection(username, password).also { it.schema = schema }
}
