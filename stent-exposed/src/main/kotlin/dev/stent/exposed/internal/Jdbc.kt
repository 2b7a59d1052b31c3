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

internal fun ResultSet.longOrNull(col: String): Long? = (getObject(col) as Number?)?.toLong()

/** `?, ?, ?` for [n] arguments. */
internal fun marks(n: Int): String = List(n) { "?" }.joinToString(", ")
