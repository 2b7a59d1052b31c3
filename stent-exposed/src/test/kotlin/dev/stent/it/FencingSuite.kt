@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent.it

import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.store.CheckpointWrite
import dev.stent.store.ChildOutcome
import dev.stent.store.ClaimRequest
import dev.stent.store.DirectClaim
import dev.stent.store.FinishWrite
import dev.stent.store.NewRun
import dev.stent.store.QueueLimitsRecord
import dev.stent.store.StoredRecord
import dev.stent.store.WriteOutcome
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.nulls.shouldBeNull
import io.kotest.matchers.nulls.shouldNotBeNull
import io.kotest.matchers.shouldBe

/** The store's fencing, run against every store. */
abstract class FencingSuite(store: TestStore) : FunSpec({

    test("a worker whose lease passed to another cannot write a checkpoint or a completion") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRun(NewRun("z", "wf", "\"\"", "default", 0, 0))
            val zombie = store.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 500)).runs.single()
            store.checkpoint("z", zombie.fencingToken, StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "1")) shouldBe WriteOutcome.OK
            Thread.sleep(700) // the zombie's lease expires
            val owner = store.claim(ClaimRequest("w2", listOf("wf"), emptyList(), 10, 30_000)).runs.single()
            owner.fencingToken shouldBe zombie.fencingToken + 1
            owner.records.map { it.stepId } shouldBe listOf("a")

            val late = StoredRecord("b", RecordKind.STEP, RecordStatus.COMPLETED, result = "2")
            store.checkpoint("z", zombie.fencingToken, late) shouldBe WriteOutcome.LEASE_LOST
            store.finish("z", zombie.fencingToken, RunStatus.COMPLETED, "\"zombie\"", null) shouldBe WriteOutcome.LEASE_LOST
            store.heartbeat("w1", listOf("z"), 30_000).leases.shouldBeEmpty()

            store.checkpoint("z", owner.fencingToken, StoredRecord("b", RecordKind.STEP, RecordStatus.COMPLETED, result = "3")) shouldBe WriteOutcome.OK
            store.finish("z", owner.fencingToken, RunStatus.COMPLETED, "\"owner\"", null) shouldBe WriteOutcome.OK
            val run = store.getRun("z")!!
            run.output shouldBe "\"owner\""
            store.listRecords("z").map { it.stepId to it.result } shouldBe listOf("a" to "1", "b" to "3")
        }
    }

    test("a recorded step is never overwritten, even by its owner") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRun(NewRun("f", "wf", "\"\"", "default", 0, 0))
            val run = store.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 30_000)).runs.single()
            store.checkpoint("f", run.fencingToken, StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "1"))
            store.checkpoint("f", run.fencingToken, StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "2"))
            store.listRecords("f").single().result shouldBe "1"
        }
    }

    test("group writes fence each run by its own token, keep final records, and skip ids that exist") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRun(NewRun("old", "wf", "\"\"", "default", 0, 0))
            val starts = store.createRuns(
                listOf(
                    NewRun("g1", "wf", "\"\"", "default", 0, 0),
                    NewRun("old", "other", "\"\"", "default", 0, 0), // exists: unchanged, its workflow reported
                    NewRun("g2", "wf", "\"\"", "default", 0, 0),
                    NewRun("g1", "other", "\"\"", "default", 0, 0), // a duplicate within the group
                ),
            )
            starts.map { it.created to it.workflowName } shouldBe listOf(true to "wf", false to "wf", true to "wf", false to "wf")

            val claimed = store.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 30_000)).runs.associateBy { it.id }
            claimed.keys shouldBe setOf("old", "g1", "g2")
            fun fencingToken(id: String) = claimed.getValue(id).fencingToken
            store.checkpoint("g2", fencingToken("g2"), StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "first"))

            store.checkpoints(
                listOf(
                    CheckpointWrite("g1", fencingToken("g1"), StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "1")),
                    CheckpointWrite("g2", fencingToken("g2"), StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "again")),
                    CheckpointWrite("old", fencingToken("old") - 1, StoredRecord("a", RecordKind.STEP, RecordStatus.COMPLETED, result = "stale")),
                ),
            ) shouldBe listOf(WriteOutcome.OK, WriteOutcome.OK, WriteOutcome.LEASE_LOST)
            store.listRecords("g1").single().result shouldBe "1"
            store.listRecords("g2").single().result shouldBe "first" // a final record stays
            store.listRecords("old").shouldBeEmpty()

            store.finishes(
                listOf(
                    FinishWrite("g1", fencingToken("g1"), RunStatus.COMPLETED, "\"one\"", null),
                    FinishWrite("old", fencingToken("old") + 1, RunStatus.COMPLETED, "\"zombie\"", null),
                    FinishWrite("g2", fencingToken("g2"), RunStatus.FAILED, null, "{}"),
                ),
            ) shouldBe listOf(WriteOutcome.OK, WriteOutcome.LEASE_LOST, WriteOutcome.OK)
            store.getRun("g1")!!.let { it.status to it.output } shouldBe (RunStatus.COMPLETED to "\"one\"")
            store.getRun("g2")!!.let { it.status to it.failure } shouldBe (RunStatus.FAILED to "{}")
            store.getRun("old")!!.let { it.status to it.output } shouldBe (RunStatus.RUNNING to null)
        }
    }

    test("children of one parent finishing in one group each send their own outcome, under their own call") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRuns(
                listOf(NewRun("p", "parent", "\"\"", "default", 0, 0)) +
                    (0..2).map { NewRun("p/m/$it", "kid", "\"\"", "default", 0, 0, parentId = "p", parentCall = "m/$it") },
            )
            val claimed = store.claim(ClaimRequest("w1", listOf("parent", "kid"), emptyList(), 10, 30_000)).runs.associateBy { it.id }
            claimed.getValue("p/m/1").parentId shouldBe "p"
            store.finishes(
                (0..2).map { FinishWrite("p/m/$it", claimed.getValue("p/m/$it").fencingToken, RunStatus.COMPLETED, "$it", null, notifyParent = true) },
            ) shouldBe List(3) { WriteOutcome.OK }
            val parent = claimed.getValue("p")
            val outcomes = store.consumeSignals("p", parent.fencingToken, "child:m/", "m/", RecordKind.CHILD, 10)
            outcomes.associate { it.stepId to ChildOutcome.decode(it.result!!).output } shouldBe mapOf("m/0" to "0", "m/1" to "1", "m/2" to "2")
        }
    }

    test("a run created claimed holds its first lease at once; a queue with limits leaves it pending") {
        withStore(store) { stent ->
            val store = stent.store
            val made = store.createRun(NewRun("c", "wf", "\"\"", "default", 0, 0, timeoutMs = 60_000, claimFor = DirectClaim("w1", 30_000)))
            made.created shouldBe true
            val lease = made.claimed.shouldNotBeNull()
            lease.fencingToken shouldBe 1L
            lease.deadlineAtMs shouldBe lease.startedAtMs + 60_000
            store.getRun("c")!!.status shouldBe RunStatus.RUNNING
            // nobody else can claim it, and its worker renews it like any lease
            store.claim(ClaimRequest("w2", listOf("wf"), emptyList(), 10, 30_000)).runs.shouldBeEmpty()
            store.heartbeat("w1", listOf("c"), 30_000).leases.map { it.runId to it.fencingToken } shouldBe listOf("c" to 1L)
            // a second start with the id gets the run as it is, claimed by nobody
            store.createRun(NewRun("c", "wf", "\"\"", "default", 0, 0, claimFor = DirectClaim("w2", 30_000))).claimed.shouldBeNull()

            store.setQueueLimits(QueueLimitsRecord("limited", concurrency = 5))
            val limited = store.createRuns(
                listOf(
                    NewRun("l1", "wf", "\"\"", "limited", 0, 0, claimFor = DirectClaim("w1", 30_000)),
                    NewRun("l2", "wf", "\"\"", "default", 0, 0, claimFor = DirectClaim("w1", 30_000)),
                ),
            )
            limited.map { it.claimed?.fencingToken } shouldBe listOf(null, 1L)
            store.getRun("l1")!!.status shouldBe RunStatus.PENDING
            store.claim(ClaimRequest("w2", listOf("wf"), listOf("limited"), 10, 30_000)).runs.map { it.id } shouldBe listOf("l1")
        }
    }

    test("a finish writes the records folded into it, fenced by its token") {
        withStore(store) { stent ->
            val store = stent.store
            store.createRuns(listOf(NewRun("p1", "wf", "\"\"", "default", 0, 0), NewRun("p2", "wf", "\"\"", "default", 0, 0)))
            val runs = store.claim(ClaimRequest("w1", listOf("wf"), emptyList(), 10, 30_000)).runs.associateBy { it.id }
            fun step(id: String) = StoredRecord(id, RecordKind.STEP, RecordStatus.COMPLETED, result = "1", attempts = 1)
            // in a group with a zombie, and with children to cancel (a transaction of its own)
            store.finishes(
                listOf(
                    FinishWrite("p1", runs.getValue("p1").fencingToken, RunStatus.COMPLETED, "1", null, records = listOf(step("a"), step("b"))),
                    FinishWrite("p2", runs.getValue("p2").fencingToken + 7, RunStatus.COMPLETED, "1", null, records = listOf(step("zombie"))),
                ),
            ) shouldBe listOf(WriteOutcome.OK, WriteOutcome.LEASE_LOST)
            store.listRecords("p2").shouldBeEmpty()
            store.finishes(
                listOf(FinishWrite("p2", runs.getValue("p2").fencingToken, RunStatus.COMPLETED, "2", null, cancelChildren = true, records = listOf(step("c")))),
            ) shouldBe listOf(WriteOutcome.OK)
            store.listRecords("p1").map { it.stepId } shouldBe listOf("a", "b")
            store.listRecords("p2").map { it.stepId to it.result } shouldBe listOf("c" to "1")
            store.getRun("p2")!!.status shouldBe RunStatus.COMPLETED
        }
    }
})

class SqliteFencingSpec : FencingSuite(TestStore.Sqlite)

class PostgresFencingSpec : FencingSuite(TestStore.Postgres)
