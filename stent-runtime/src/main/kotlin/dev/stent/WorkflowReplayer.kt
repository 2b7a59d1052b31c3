package dev.stent

import dev.stent.runtime.internal.engine.ReplayCheck
import java.nio.file.Files
import java.nio.file.Path
import kotlin.io.path.extension
import kotlin.io.path.isRegularFile

/**
 * Checks a workflow definition against recorded run histories, without side effects: no step body
 * runs, nothing is written, no database is needed. The code is driven through the history exactly
 * as a worker would replay it; where it reaches a call the history has no record for, that branch
 * stops (the run would go on there with new work).
 *
 * It reports what would break a run in flight: a record of another kind under the same id, a
 * recorded step (or timer, signal, child) the code no longer reaches before doing new work (a
 * renamed or removed step, new work inserted before it), a finished run the code would now carry
 * on or end otherwise, and a `version` marker outside the range the code supports.
 *
 * Export histories with `client.history(runId)` (or `stent history <run> --out file.json`), keep
 * them in a folder beside the code, and replay them all in a test ([checkAll]): the way to guard a
 * deploy. Steps are matched by id, so reordering steps that are both recorded is not a problem.
 */
public object WorkflowReplayer {
    /** Replays [history] through [definition] and reports what differs. */
    @JvmStatic
    public fun check(definition: WorkflowDefinition<*, *>, history: RunHistory): ReplayReport = ReplayCheck.check(definition, history)

    /**
     * Replays every `*.json` history in [folder] (not recursive) through the definition of its
     * workflow among [definitions]; a history of a workflow that is not among them is reported too.
     */
    @JvmStatic
    public fun checkAll(definitions: Collection<WorkflowDefinition<*, *>>, folder: Path): List<ReplayReport> {
        if (!Files.isDirectory(folder)) throw InvalidArgumentException("no folder of run histories at '$folder'")
        val byName = definitions.associateBy { it.name }
        val files = Files.list(folder).use { s -> s.filter { it.isRegularFile() && it.extension == "json" }.sorted().toList() }
        return files.map { file ->
            val history = RunHistory.read(file)
            val definition = byName[history.workflowName]
                ?: return@map ReplayReport(
                    history.runId, history.workflowName,
                    listOf(ReplayProblem("workflow '${history.workflowName}' of '${file.fileName}' is not among the definitions checked", null, null, null)),
                    emptyList(),
                )
            check(definition, history)
        }
    }

    /** [checkAll], throwing the first problem found (a [NonDeterminismException]); for a test that guards a deploy. */
    @JvmStatic
    public fun assertAll(definitions: Collection<WorkflowDefinition<*, *>>, folder: Path) {
        checkAll(definitions, folder).forEach { it.assertOk() }
    }
}

/** What [WorkflowReplayer.check] found for one history. */
public class ReplayReport(
    public val runId: String,
    public val workflowName: String,
    /** What differs between the history and the code; empty when the code replays it. */
    public val problems: List<ReplayProblem>,
    /** The calls the code reached that the history has no record for: where the run would go on. */
    public val frontier: List<String>,
) {
    /** True when the code replays the history. */
    public val isOk: Boolean get() = problems.isEmpty()

    /** Throws a [NonDeterminismException] for the first problem, if any. */
    public fun assertOk() {
        val p = problems.firstOrNull() ?: return
        throw NonDeterminismException(runId, workflowName, p.stepId ?: "(none)", p.recorded ?: "(see below)", p.actual ?: p.message)
    }

    override fun toString(): String =
        if (isOk) "ReplayReport($runId: ok)" else "ReplayReport($runId: ${problems.joinToString("; ") { it.message }})"
}

/**
 * One difference: the record involved ([stepId]), what the history [recorded] and what the code
 * does now ([actual]), where they apply, and a [message] that says it in one sentence.
 */
public class ReplayProblem(
    public val message: String,
    public val stepId: String?,
    public val recorded: String?,
    public val actual: String?,
) {
    override fun toString(): String = message
}
