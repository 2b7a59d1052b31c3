package dev.stent.it

import dev.stent.RunStatus
import dev.stent.store.ClaimRequest
import dev.stent.store.NewRun
import dev.stent.store.StepKind
import dev.stent.store.StepRecord
import dev.stent.store.StepStatus
import dev.stent.store.WriteOutcome
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.shouldBe

/** The store's fencing, run against every store. */
abstract class FencingSuite(store: TestStore) : FunSpec({

    test("a worker whose lease passed to another cannot write a checkpoint or a completion") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRun(NewRun("z", "wf", "\"\"", "default", 0, 0))
            val zombie = store.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 500)).runs.single()
            store.checkpoint("z", zombie.token, StepRecord("a", StepKind.STEP, StepStatus.COMPLETED, result = "1")) shouldBe WriteOutcome.OK
            Thread.sleep(700) // the zombie's lease expires
            val owner = store.claim(ClaimRequest("w2", listOf("wf"), emptyList(), 10, 30_000)).runs.single()
            owner.token shouldBe zombie.token + 1
            owner.records.map { it.stepId } shouldBe listOf("a")

            store.checkpoint("z", zombie.token, StepRecord("b", StepKind.STEP, StepStatus.COMPLETED, result = "2")) shouldBe WriteOutcome.LEASE_LOST
            store.finish("z", zombie.token, RunStatus.COMPLETED, "\"zombie\"", null) shouldBe WriteOutcome.LEASE_LOST
            store.heartbeat("w1", listOf("z"), 30_000).leases.shouldBeEmpty()

            store.checkpoint("z", owner.token, StepRecord("b", StepKind.STEP, StepStatus.COMPLETED, result = "3")) shouldBe WriteOutcome.OK
            store.finish("z", owner.token, RunStatus.COMPLETED, "\"owner\"", null) shouldBe WriteOutcome.OK
            val run = store.getRun("z")!!
            run.output shouldBe "\"owner\""
            store.listSteps("z").map { it.stepId to it.result } shouldBe listOf("a" to "1", "b" to "3")
        }
    }

    test("a recorded step is never overwritten, even by its owner") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRun(NewRun("f", "wf", "\"\"", "default", 0, 0))
            val run = store.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 30_000)).runs.single()
            store.checkpoint("f", run.token, StepRecord("a", StepKind.STEP, StepStatus.COMPLETED, result = "1"))
            store.checkpoint("f", run.token, StepRecord("a", StepKind.STEP, StepStatus.COMPLETED, result = "2"))
            store.listSteps("f").single().result shouldBe "1"
        }
    }
})

class SqliteFencingSpec : FencingSuite(TestStore.Sqlite)

class PostgresFencingSpec : FencingSuite(TestStore.Postgres)
