@file:JvmName("StentStores")

package dev.stent.exposed

import com.zaxxer.hikari.HikariConfig
import com.zaxxer.hikari.HikariDataSource
import dev.stent.InternalStentApi
import dev.stent.Stent
import dev.stent.StentOptions
import dev.stent.StentStoreException
import dev.stent.exposed.internal.ClockedSqlite
import dev.stent.exposed.internal.ExposedStore
import dev.stent.exposed.internal.Migrations
import dev.stent.exposed.internal.PostgresDialect
import dev.stent.exposed.internal.SqlDialect
import dev.stent.exposed.internal.SqliteDialect
import dev.stent.requireArgument
import dev.stent.store.WorkflowStore
import org.jetbrains.exposed.v1.core.DatabaseConfig
import org.jetbrains.exposed.v1.jdbc.Database
import org.sqlite.SQLiteConfig
import java.io.File
import java.sql.Connection
import java.sql.DriverManager
import javax.sql.DataSource

/** See [Stents.sqlite]. */
@JvmSynthetic
public fun Stent.Companion.sqlite(path: String, options: StentOptions = StentOptions()): Stent = Stents.sqlite(path, options)

/** See [Stents.postgres]. */
@JvmSynthetic
public fun Stent.Companion.postgres(
    jdbcUrl: String,
    user: String,
    password: String,
    schema: String? = null,
    poolSize: Int = 10,
    options: StentOptions = StentOptions(),
): Stent = Stents.postgres(jdbcUrl, user, password, schema, poolSize, options)

/** See [Stents.postgres]. */
@JvmSynthetic
public fun Stent.Companion.postgres(
    dataSource: DataSource,
    schema: String? = null,
    maxConnections: Int = 10,
    options: StentOptions = StentOptions(),
): Stent = Stents.postgres(dataSource, schema, maxConnections, options)

/**
 * Opens Stent stores; Kotlin can also write `Stent.sqlite(path)` / `Stent.postgres(url, user, password)`.
 */
@OptIn(InternalStentApi::class)
public object Stents {
    /**
     * Opens (creating if needed) a Stent store in the SQLite file at [path]: WAL journal, a busy
     * timeout so several processes can share the file, `synchronous=FULL` so a committed checkpoint
     * survives power loss, and every transaction `BEGIN IMMEDIATE`. Applies missing migrations.
     *
     * One connection per process: SQLite has one writer at a time anyway, and queueing in-process
     * beats spinning on the file lock.
     */
    @JvmStatic
    @JvmOverloads
    public fun sqlite(path: String, options: StentOptions = StentOptions()): Stent = sqlite(path, options) { it }

    /**
     * [sqlite] on a virtual clock: the database's `now` and the workers' are [clock] (epoch
     * milliseconds), which the test kit (`stent-test`) moves. Not for production.
     */
    @InternalStentApi
    @JvmStatic
    public fun sqliteWithClock(path: String, options: StentOptions, clock: java.util.function.LongSupplier): Stent =
        sqlite(path, options, clock) { it }

    /**
     * The plan of the claim [request] on the store of [stent] now, with what it read (PostgreSQL: `EXPLAIN (ANALYZE,
     * BUFFERS)`, rolled back, so nothing is claimed; SQLite: `EXPLAIN QUERY PLAN`). For benchmarks and operators.
     */
    @InternalStentApi
    @JvmStatic
    public fun explainClaim(stent: Stent, request: dev.stent.store.ClaimRequest): String =
        (stent.store as? ExposedStore ?: throw IllegalArgumentException("explainClaim needs a store opened by Stents, not ${stent.store.javaClass.name}"))
            .explainClaim(request)

    /** [sqlite] with the store wrapped by [wrap] (tests inject faults this way), on [clock] when given. */
    @JvmSynthetic
    internal fun sqlite(
        path: String,
        options: StentOptions,
        clock: java.util.function.LongSupplier? = null,
        wrap: (WorkflowStore) -> WorkflowStore,
    ): Stent {
        File(path).absoluteFile.parentFile?.mkdirs()
        val sqlite = SQLiteConfig().apply {
            setJournalMode(SQLiteConfig.JournalMode.WAL)
            setSynchronous(SQLiteConfig.SynchronousMode.FULL)
            setBusyTimeout(options.storeTimeout.inWholeMilliseconds.toInt())
            setTransactionMode(SQLiteConfig.TransactionMode.IMMEDIATE)
        }
        val hikari = HikariConfig().apply {
            if (clock == null) {
                jdbcUrl = "jdbc:sqlite:$path"
                dataSourceProperties = sqlite.toProperties()
            } else {
                dataSource = ClockedSqlite(sqlite, "jdbc:sqlite:$path", clock)
            }
            maximumPoolSize = 1
            minimumIdle = 1
            poolName = "stent-sqlite"
            transactionIsolation = "TRANSACTION_SERIALIZABLE"
            // sqlite-jdbc begins a transaction as soon as autocommit is off: idle connections must not hold the lock
            isAutoCommit = true
        }
        val ds = try {
            HikariDataSource(hikari)
        } catch (e: Exception) {
            throw StentStoreException("cannot open the SQLite file '$path': ${e.message}", e)
        }
        val dialect = if (clock == null) SqliteDialect() else SqliteDialect(now = "${ClockedSqlite.FUNCTION}()")
        return open(ds, dialect, null, 1, null, ds::close, options, wrap, clock)
    }

    /**
     * Opens a Stent store in the PostgreSQL database at [jdbcUrl] (`jdbc:postgresql://host:5432/db`),
     * through a HikariCP pool of [poolSize] connections, in [schema] (created if missing; default:
     * the connection's search path), and applies missing migrations under an advisory lock, so many
     * workers starting together migrate once. Wake-ups between processes use `LISTEN/NOTIFY` on one
     * extra connection.
     */
    @JvmStatic
    @JvmOverloads
    public fun postgres(
        jdbcUrl: String,
        user: String,
        password: String,
        schema: String? = null,
        poolSize: Int = 10,
        options: StentOptions = StentOptions(),
    ): Stent = postgres(jdbcUrl, user, password, schema, poolSize, options) { it }

    /** [postgres] with the store wrapped by [wrap] (tests inject faults this way). */
    @JvmSynthetic
    internal fun postgres(
        jdbcUrl: String,
        user: String,
        password: String,
        schema: String?,
        poolSize: Int,
        options: StentOptions,
        wrap: (WorkflowStore) -> WorkflowStore,
    ): Stent {
        requireArgument(poolSize >= 1) { "postgres: poolSize must be at least 1, was $poolSize" }
        schema?.let(::checkSchema)
        val hikari = HikariConfig().apply {
            this.jdbcUrl = jdbcUrl
            username = user
            this.password = password
            maximumPoolSize = poolSize
            minimumIdle = minOf(2, poolSize)
            poolName = "stent-postgres"
            connectionTimeout = 10_000
            // the statements are written for READ COMMITTED (SKIP LOCKED, re-checked fences); set it once per connection
            transactionIsolation = "TRANSACTION_READ_COMMITTED"
            if (schema != null) this.schema = schema
            // every call has a time bound: the server cancels a statement after storeTimeout, and a connection
            // whose server or network stopped answering fails a little later instead of blocking for good
            val timeoutMs = options.storeTimeout.inWholeMilliseconds
            addDataSourceProperty("options", "-c statement_timeout=$timeoutMs")
            addDataSourceProperty("socketTimeout", (timeoutMs / 1000 + SOCKET_SLACK_SECONDS).toString())
            addDataSourceProperty("connectTimeout", "10")
        }
        val ds = try {
            HikariDataSource(hikari)
        } catch (e: Exception) {
            throw StentStoreException("cannot connect to PostgreSQL at $jdbcUrl as '$user': ${e.message}", e)
        }
        val listen = {
            val props = java.util.Properties().apply {
                setProperty("user", user)
                setProperty("password", password)
                setProperty("connectTimeout", "10")
                setProperty("tcpKeepAlive", "true")
            }
            DriverManager.getConnection(jdbcUrl, props).also { c -> schema?.let { c.schema = it } }
        }
        return open(ds, PostgresDialect, schema, poolSize, listen, ds::close, options, wrap)
    }

    /**
     * Opens a Stent store on a PostgreSQL [dataSource] you own (Stent does not close it). [maxConnections]
     * bounds Stent's concurrent use of it; one more connection is held for `LISTEN/NOTIFY`, and given
     * back with `UNLISTEN *`. Stent cannot set time bounds on connections it does not create: give
     * your pool a `socketTimeout` and the server a `statement_timeout` (see the operations guide).
     */
    @JvmStatic
    @JvmOverloads
    public fun postgres(
        dataSource: DataSource,
        schema: String? = null,
        maxConnections: Int = 10,
        options: StentOptions = StentOptions(),
    ): Stent {
        requireArgument(maxConnections >= 1) { "postgres: maxConnections must be at least 1, was $maxConnections" }
        schema?.let(::checkSchema)
        val connect = { dataSource.connection.also { c -> schema?.let { c.schema = it } } }
        val scoped = if (schema == null) dataSource else SchemaDataSource(dataSource, schema)
        return open(scoped, PostgresDialect, schema, maxConnections, connect, {}, options, wrap = { it })
    }
}

/** Seconds the driver's socket timeout adds to the statement timeout, so the server cancels a slow statement first. */
private const val SOCKET_SLACK_SECONDS = 10L

/** Lower-case identifiers only: they need no quoting, and the wake-up channel `stent_<schema>` stays within PostgreSQL's 63 bytes. */
@OptIn(InternalStentApi::class)
private fun checkSchema(schema: String) {
    requireArgument(Regex("[a-z_][a-z0-9_]{0,49}").matches(schema)) {
        "invalid schema '$schema': use 1 to 50 lower-case letters, digits and underscores, starting with a letter or underscore"
    }
}

private fun open(
    dataSource: DataSource,
    dialect: SqlDialect,
    schema: String?,
    maxConnections: Int,
    listen: (() -> Connection)?,
    onClose: () -> Unit,
    options: StentOptions,
    wrap: (WorkflowStore) -> WorkflowStore,
    clock: java.util.function.LongSupplier? = null,
): Stent {
    try {
        val db = Database.connect(
            dataSource,
            databaseConfig = DatabaseConfig {
                // no blind retries: a commit that failed ambiguously must not insert a signal twice
                defaultMaxAttempts = 1
                defaultIsolationLevel = dialect.isolation
            },
        )
        if (options.migrate) Migrations.migrate(db, dialect, schema) else Migrations.check(db, schema)
        val channel = "stent" + (schema?.let { "_$it" } ?: "")
        return Stent(wrap(ExposedStore(dataSource, db, dialect, maxConnections, channel, listen, onClose)), options, clock)
    } catch (e: dev.stent.StentSchemaException) {
        onClose()
        throw e
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
