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
        isAutoCommit = true // sqlite-jdbc starts BEGIN IMMEDIATE as soon as autocommit is off: idle connections must not hold the lock
    }
    return open(HikariDataSource(hikari), SqlDialect.Sqlite, options)
}

private fun open(dataSource: HikariDataSource, dialect: SqlDialect, options: StentOptions): Stent {
    try {
        val db = Database.connect(
            dataSource,
            databaseConfig = DatabaseConfig {
                defaultMaxAttempts = 3
                defaultMinRetryDelay = 5
                defaultMaxRetryDelay = 200
            },
        )
        Migrations.migrate(db, dialect)
        return Stent(ExposedStore(dataSource, db, dialect), options)
    } catch (e: Exception) {
        dataSource.close()
        throw StentStoreException("cannot open the Stent store at ${dataSource.jdbcUrl}: ${e.message}", e)
    }
}
