package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.core.Table

/** `stent_signals`: one row per signal sent, consumed by exactly one wait, in [seq] order. */
internal object SignalsTable : Table("stent_signals") {
    val seq = long("seq").autoIncrement()
    val runId = varchar("run_id", 200)
    val name = varchar("name", 420)
    val payload = text("payload")
    val createdAt = long("created_at")

    /** The wait (`signal:name#n`) that took it; null while unconsumed. */
    val consumedBy = varchar("consumed_by", 400).nullable()
    val consumedAt = long("consumed_at").nullable()

    override val primaryKey = PrimaryKey(seq)

    init {
        // signals by run: the next unconsumed signal of a name
        index("stent_signals_run", false, runId, name, seq)
    }
}
