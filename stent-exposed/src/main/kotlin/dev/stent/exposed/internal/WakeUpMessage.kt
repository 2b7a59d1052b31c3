package dev.stent.exposed.internal

import dev.stent.store.WakeUpSink

/**
 * The wake-up protocol between processes on one PostgreSQL database: a notification's payload is
 * `<kind>:<runId>` on the schema's channel (`stent` or `stent_<schema>`). Wake-ups are hints; a
 * receiver re-reads the database, so a lost or duplicate one is harmless.
 */
internal enum class WakeUpMessage(val code: Char) {
    /** New claimable work may exist: a start, a release, a signal that made a run ready. */
    WORK('w'),

    /** A run finished (awaiters look). */
    FINISHED('f'),

    /** A signal was stored for a run (its in-memory wait looks). */
    SIGNAL('s'),

    /** A client asked to cancel a running run (its worker looks). */
    CANCEL('c'),
    ;

    /** The payload announcing this for [runId] (empty for [WORK]). */
    fun payload(runId: String = ""): String = "$code:$runId"

    companion object {
        /** Hands a received payload to [sink]; one it does not know is ignored. */
        fun dispatch(payload: String, sink: WakeUpSink) {
            val kind = entries.firstOrNull { it.code == payload.firstOrNull() } ?: return
            val runId = payload.substringAfter(':', "")
            when (kind) {
                WORK -> sink.work()
                FINISHED -> sink.finished(runId)
                SIGNAL -> sink.signal(runId)
                CANCEL -> sink.cancel(runId)
            }
        }
    }
}
