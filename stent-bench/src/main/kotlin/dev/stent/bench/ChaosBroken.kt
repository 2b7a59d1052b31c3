package dev.stent.bench

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.Stent
import dev.stent.it.TestStore
import dev.stent.store.ClaimRequest
import dev.stent.store.ClaimResult
import dev.stent.store.ClaimedRun
import dev.stent.store.StoredRecord
import dev.stent.store.WorkflowStore
import dev.stent.store.WriteOutcome
import java.sql.Connection
import java.sql.DriverManager

/**
 * Opens a chaos worker's store broken on purpose ([BrokenVariant]), for the test that proves the
 * harness fails when a guarantee is broken. Never used outside that test.
 */
internal fun openBroken(variant: BrokenVariant, processArgs: List<String>): Stent =
    TestStore.openFromArgs(processArgs) { real ->
        when (variant) {
            BrokenVariant.MEMO_OFF -> ForgetfulStore(real)
            BrokenVariant.OVERWRITE -> OverwritingStore(real) { rawConnection(processArgs) }
        }
    }

private fun rawConnection(processArgs: List<String>): Connection =
    if (processArgs[0] == "postgres") DriverManager.getConnection(processArgs[1], processArgs[2], processArgs[3]).also { it.schema = processArgs[4] }
    else DriverManager.getConnection("jdbc:sqlite:${processArgs[1]}")

/** Claims hand the engine no finished steps, so every replay runs them again. */
private class ForgetfulStore(private val real: WorkflowStore) : WorkflowStore by real {
    override fun claim(request: ClaimRequest): ClaimResult {
        val r = real.claim(request)
        return ClaimResult(
            r.runs.map { c ->
                val kept = c.records.filterNot { it.kind == RecordKind.STEP && it.status == RecordStatus.COMPLETED }
                ClaimedRun(c.id, c.workflowName, c.input, c.fencingToken, c.claimCount, kept, c.cancelRequested, c.deadlineAtMs)
            },
            r.dbNowMs, r.nextReadyAt,
        )
    }
}

/** After recording a finished step, writes the record again, as a store that overwrites final records would. */
private class OverwritingStore(private val real: WorkflowStore, private val connect: () -> Connection) : WorkflowStore by real {
    override fun checkpoint(runId: String, fencingToken: Long, record: StoredRecord): WriteOutcome =
        real.checkpoint(runId, fencingToken, record).also { if (it == WriteOutcome.OK) overwrite(runId, record) }

    override fun checkpoints(writes: List<dev.stent.store.CheckpointWrite>): List<WriteOutcome> =
        real.checkpoints(writes).also { outcomes -> writes.zip(outcomes).forEach { (w, o) -> if (o == WriteOutcome.OK) overwrite(w.runId, w.record) } }

    private fun overwrite(runId: String, record: StoredRecord) {
        if (record.kind != RecordKind.STEP || record.status != RecordStatus.COMPLETED) return
        connect().use { c ->
            c.prepareStatement("UPDATE stent_records SET result = result WHERE run_id = ? AND step_id = ?").use {
                it.setString(1, runId)
                it.setString(2, record.stepId)
                it.executeUpdate()
            }
        }
    }
}
