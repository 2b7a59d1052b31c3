package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.core.Table

/** `stent_records` (`stent_steps` before migration 4): the records of each run's history, keyed by run and record id (which also serves "records by run"). */
internal object RecordsTable : Table("stent_records") {
    val runId = varchar("run_id", 200)
    val stepId = varchar("step_id", 400)
    val kind = varchar("kind", 16)
    val status = varchar("status", 16)
    val result = text("result").nullable()
    val failure = text("failure").nullable()
    val attempts = integer("attempts")
    val wakeAt = long("wake_at").nullable()
    val createdAt = long("created_at")
    val updatedAt = long("updated_at")

    override val primaryKey = PrimaryKey(runId, stepId)
}
