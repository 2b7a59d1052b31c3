package dev.stent.exposed.internal

import java.sql.Connection
import java.sql.PreparedStatement
import java.sql.ResultSet
import java.sql.Types

/** Small JDBC helpers for the hot-path statements, which are written as SQL to control each round trip. */
internal fun PreparedStatement.bind(args: List<Any?>) {
    args.forEachIndexed { i, a ->
        val idx = i + 1
        when (a) {
            null -> setNull(idx, Types.NULL)
            is String -> setString(idx, a)
            is Long -> setLong(idx, a)
            is Int -> setInt(idx, a)
            is Boolean -> setBoolean(idx, a)
            is java.sql.Array -> setArray(idx, a)
            else -> error("unsupported SQL argument ${a.javaClass}")
        }
    }
}

internal fun Connection.update(sql: String, args: List<Any?>): Int =
    prepareStatement(sql).use { it.bind(args); it.executeUpdate() }

internal fun <T> Connection.query(sql: String, args: List<Any?>, map: (ResultSet) -> T): List<T> =
    prepareStatement(sql).use { ps ->
        ps.bind(args)
        ps.executeQuery().use { rs ->
            val out = ArrayList<T>()
            while (rs.next()) out += map(rs)
            out
        }
    }

/**
 * Runs `;`-separated statements as one round trip and returns the rows of the last, after [skip] results of
 * statements before it. On PostgreSQL, statements sent together on an autocommit connection run as one implicit
 * transaction: a lock the first takes is held through the last and released by the commit at the end, with no
 * round trip (and no idle transaction) between them; each statement still reads a snapshot of its own.
 */
internal fun <T> Connection.queryAfter(skip: Int, sql: String, args: List<Any?>, map: (ResultSet) -> T): List<T> =
    prepareStatement(sql).use { ps ->
        ps.bind(args)
        var isRows = ps.execute()
        var index = 0
        val out = ArrayList<T>()
        while (isRows || ps.updateCount != -1) {
            if (isRows && index++ >= skip) ps.resultSet.use { rs -> while (rs.next()) out += map(rs) }
            isRows = ps.moreResults
        }
        out
    }

internal fun ResultSet.longOrNull(col: String): Long? = (getObject(col) as Number?)?.toLong()
internal fun ResultSet.longOrNull(col: Int): Long? = (getObject(col) as Number?)?.toLong()
internal fun ResultSet.intOrNull(col: String): Int? = (getObject(col) as Number?)?.toInt()

/** `?, ?, ?` for [n] arguments. */
internal fun marks(n: Int): String = List(n) { "?" }.joinToString(", ")

/**
 * Keeps the prepared statements of SQLite connections, which sqlite-jdbc would otherwise compile on
 * every call (PostgreSQL's driver caches them itself). The statements are prepared on the physical
 * connection, outside the pool's tracking, at most [MAX_CACHED] per connection (least recently used
 * out), and die with their connection.
 *
 * The caches are keyed by physical connection in an ordinary map: a statement holds its connection,
 * so a weak map would never let one go. Instead, each time a connection is seen for the first time
 * (the pool retired one and opened another), the caches of closed connections are dropped.
 */
internal class SqliteStatements {
    // guarded by itself
    private val caches = HashMap<Connection, LinkedHashMap<String, PreparedStatement>>()

    /** [pooled] with cached statements; use it only while [pooled] is checked out. */
    fun wrap(pooled: Connection): Connection {
        val physical = pooled.unwrap(Connection::class.java)
        val cache = synchronized(caches) {
            caches[physical] ?: run {
                caches.keys.removeIf { it.isClosed }
                object : LinkedHashMap<String, PreparedStatement>(16, 0.75f, true) {
                    override fun removeEldestEntry(eldest: MutableMap.MutableEntry<String, PreparedStatement>): Boolean =
                        (size > MAX_CACHED).also { if (it) runCatching { eldest.value.close() } }
                }.also { caches[physical] = it }
            }
        }
        return CachingConnection(pooled, physical, cache)
    }

    /** How many connections have a cache now; for tests. */
    internal fun cachedConnections(): Int = synchronized(caches) { caches.size }

    private companion object {
        const val MAX_CACHED = 64
    }

    private class CachingConnection(
        pooled: Connection,
        private val physical: Connection,
        private val cache: LinkedHashMap<String, PreparedStatement>,
    ) : Connection by pooled {
        override fun prepareStatement(sql: String): PreparedStatement =
            ReusedStatement(cache.getOrPut(sql) { physical.prepareStatement(sql) })
    }

    /** Closing gives the statement back to the cache instead of freeing it. */
    private class ReusedStatement(private val ps: PreparedStatement) : PreparedStatement by ps {
        override fun close() = ps.clearParameters()
    }
}
