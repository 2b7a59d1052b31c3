package dev.stent

import kotlinx.serialization.Serializable
import kotlinx.serialization.json.Json
import java.nio.file.Files
import java.nio.file.Path

/**
 * A run's history as recorded: its input, status and outcome and every record, as
 * [StentClient.history] exports it (or `stent history <run>` from the CLI). Plain JSON
 * ([toJson], [fromJson]; payloads stay encoded strings), so it can be kept beside the code and
 * checked against a new version of the workflow with [WorkflowReplayer] before a deploy.
 */
@Serializable
public class RunHistory(
    public val runId: String,
    public val workflowName: String,
    public val status: RunStatus,
    /** The encoded input. */
    public val input: String,
    /** The encoded output of a COMPLETED run. */
    public val output: String? = null,
    /** The encoded [Failure] of a FAILED run. */
    public val failure: String? = null,
    /** The next run of the chain when this one continued as new. */
    public val continuedAs: String? = null,
    /** When it was exported (epoch milliseconds, database clock): timers due by then had passed. */
    public val exportedAt: Long,
    /** Every record, oldest first. */
    public val records: List<Record>,
    /** The version of this format. */
    public val format: Int = FORMAT,
) {
    /** One record: a step, a timer, a signal wait, a child, a recorded value or a version marker. */
    @Serializable
    public class Record(
        public val id: String,
        public val kind: RecordKind,
        public val status: RecordStatus,
        public val result: String? = null,
        public val failure: String? = null,
        public val attempts: Int = 0,
        public val wakeAt: Long? = null,
        public val createdAt: Long = 0,
    ) {
        override fun toString(): String = "Record($id, $kind, $status)"
    }

    /** This history as pretty-printed JSON. */
    public fun toJson(): String = json.encodeToString(serializer(), this)

    /** Writes [toJson] to [path] (replacing it). */
    public fun write(path: Path) {
        path.toAbsolutePath().parent?.let { Files.createDirectories(it) }
        Files.writeString(path, toJson())
    }

    override fun toString(): String = "RunHistory($runId, $workflowName, $status, records=${records.size})"

    public companion object {
        /** The format [toJson] writes. */
        public const val FORMAT: Int = 1

        private val json = Json {
            prettyPrint = true
            ignoreUnknownKeys = true
            encodeDefaults = true
        }

        /** Reads a history written by [toJson]; a malformed one throws [InvalidArgumentException] naming what is wrong. */
        @JvmStatic
        public fun fromJson(text: String): RunHistory = try {
            json.decodeFromString(serializer(), text)
        } catch (e: kotlinx.serialization.SerializationException) {
            throw InvalidArgumentException("not a Stent run history: ${e.message}; export one with client.history(runId) or `stent history <run>`")
        } catch (e: IllegalArgumentException) {
            throw InvalidArgumentException("not a Stent run history: ${e.message}; export one with client.history(runId) or `stent history <run>`")
        }.also {
            if (it.format > FORMAT) {
                throw InvalidArgumentException("run history '${it.runId}' has format ${it.format}; this Stent reads format $FORMAT or older")
            }
        }

        /** Reads the history in the file at [path]. */
        @JvmStatic
        public fun read(path: Path): RunHistory = fromJson(Files.readString(path))
    }
}
