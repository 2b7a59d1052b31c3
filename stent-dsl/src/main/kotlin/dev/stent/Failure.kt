package dev.stent

import kotlinx.serialization.Serializable

/**
 * A failure as Stent records it: the exception's class name, message, stack trace and cause
 * chain, as plain data. Recorded failures are rethrown on replay as [RecordedException]s that
 * carry this, never by Java-deserializing the original exception.
 */
@Serializable
public class Failure(
    /** Fully qualified class name of the original exception. */
    public val type: String,
    /** The original exception's message, if it had one. */
    public val message: String? = null,
    /** The original stack trace, one frame per line. */
    public val stackTrace: String = "",
    /** The cause, recorded the same way. */
    public val cause: Failure? = null,
) {
    /** `type: message`, then `caused by:` for each cause. */
    override fun toString(): String = buildString {
        var f: Failure? = this@Failure
        var first = true
        while (f != null) {
            if (!first) append("\ncaused by: ")
            append(f.type)
            if (f.message != null) append(": ").append(f.message)
            first = false
            f = f.cause
        }
    }

    public companion object {
        private const val MAX_DEPTH = 16
        private const val MAX_FRAMES = 64

        /** Records [throwable] and its cause chain (cycles and very deep chains are cut). */
        @JvmStatic
        public fun of(throwable: Throwable): Failure = of(throwable, 0, HashSet())

        private fun of(t: Throwable, depth: Int, seen: MutableSet<Throwable>): Failure {
            if (t is RecordedException) return t.failure
            // kotlinx.coroutines' stack-trace recovery (on with -ea) wraps an exception in a copy of itself
            val original = t.cause
            if (original != null && original.javaClass == t.javaClass && original.message == t.message) return of(original, depth, seen)
            seen += t
            val next = t.cause?.takeIf { depth < MAX_DEPTH && it !in seen }
            val frames = t.stackTrace.take(MAX_FRAMES).joinToString("\n") { "at $it" }
            return Failure(t.javaClass.name, t.message, frames, next?.let { of(it, depth + 1, seen) })
        }
    }
}

/**
 * A recorded [Failure] raised again. Stent rethrows this, not the original exception, so a
 * step fails the same way on its first run and on every replay.
 */
public class RecordedException(public val failure: Failure) :
    RuntimeException(failure.message, failure.cause?.let { RecordedException(it) }) {
    override fun fillInStackTrace(): Throwable = this
    override fun toString(): String = if (failure.message != null) "${failure.type}: ${failure.message}" else failure.type
}
