package dev.stent.exposed.internal

import org.jetbrains.exposed.v1.core.Table

/** `stent_schema_version`: one row per applied migration. */
internal object SchemaVersionTable : Table("stent_schema_version") {
    val version = integer("version")
    val appliedAt = long("applied_at")
    override val primaryKey = PrimaryKey(version)
}
