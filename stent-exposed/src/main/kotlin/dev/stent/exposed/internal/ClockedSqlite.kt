package dev.stent.exposed.internal

import org.sqlite.Function
import org.sqlite.SQLiteConfig
import org.sqlite.SQLiteConnection
import org.sqlite.SQLiteDataSource
import java.sql.Connection
import java.util.function.LongSupplier

/**
 * SQLite connections on which [FUNCTION]`()` reads [clock] (epoch milliseconds): the test kit's
 * virtual time, which the SQLite dialect then uses for `now` in every statement.
 */
internal class ClockedSqlite(config: SQLiteConfig, url: String, private val clock: LongSupplier) : SQLiteDataSource(config) {
    init {
        this.url = url
    }

    override fun getConnection(): Connection = withClock(super.getConnection())

    override fun getConnection(username: String?, password: String?): SQLiteConnection = withClock(super.getConnection(username, password))

    private fun <C : Connection> withClock(connection: C): C = connection.also {
        Function.create(
            it, FUNCTION,
            object : Function() {
                override fun xFunc() = result(clock.asLong)
            },
        )
    }

    companion object {
        const val FUNCTION = "stent_now"
    }
}
