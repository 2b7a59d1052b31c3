package dev.stent.test

import dev.stent.InvalidArgumentException
import dev.stent.NonDeterminismException
import dev.stent.RunHistory
import dev.stent.RunStatus
import dev.stent.WorkflowDefinition
import dev.stent.WorkflowReplayer
import dev.stent.WorkflowScope
import dev.stent.awaitSignal
import dev.stent.signal
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldHaveSize
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.nio.file.Files
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.days

/** Step bodies run by any version of the order workflow: the replayer must run none. */
private val bodies = AtomicInteger()

/** Builds a version of the order workflow: [body] is its code, under the one name "order". */
private fun order(body: suspend WorkflowScope.(String) -> String): WorkflowDefinition<String, String> = workflow("order", body = body)

/** Version 1, the code the histories were recorded with. */
private val v1 = order { id ->
    step("reserve") { bodies.incrementAndGet(); "r" }
    step("charge") { bodies.incrementAndGet(); "c" }
    sleep(1.days, id = "cool-off")
    val by = awaitSignal<String>("approve")
    step("ship") { bodies.incrementAndGet(); "$id shipped, approved by $by" }
}

class ReplayerSpec : FunSpec({
    val stent = StentKotestExtension { register(v1) }
    extension(stent)

    /** A history of v1 that completed, and one waiting in its cool-off (after reserve and charge). */
    suspend fun histories(): Pair<RunHistory, RunHistory> {
        val env = stent.env
        val done = env.client.start(v1, "o-1")
        env.advanceTimeBy(2.days)
        env.client.signal(done.id, "approve", "ann")
        env.await(done) shouldBe "o-1 shipped, approved by ann"
        val waiting = env.client.start(v1, "o-2")
        env.runUntilIdle()
        waiting.describe().status shouldBe RunStatus.WAITING
        // through JSON, as they would be kept beside the code
        return RunHistory.fromJson(env.client.history(done.id).toJson()) to RunHistory.fromJson(env.client.history(waiting.id).toJson())
    }

    test("an unchanged definition replays both histories, running no step body") {
        val (done, waiting) = histories()
        bodies.set(0)
        WorkflowReplayer.check(v1, done).problems shouldBe emptyList()
        val report = WorkflowReplayer.check(v1, waiting)
        report.isOk shouldBe true
        report.frontier shouldBe listOf("wait") // the cool-off had not passed when it was exported
        bodies.get() shouldBe 0
    }

    test("a renamed step is flagged with the record and the call that differ") {
        val (done, waiting) = histories()
        val renamed = order { id ->
            step("reserve") { "r" }
            step("charge-card") { "c" }
            sleep(1.days, id = "cool-off")
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
        }
        for (history in listOf(done, waiting)) {
            val problem = WorkflowReplayer.check(renamed, history).problems.single()
            problem.stepId shouldBe "charge"
            problem.recorded shouldBe "a step 'charge'"
            problem.actual!! shouldContain "step 'charge-card'"
        }
        shouldThrow<NonDeterminismException> { WorkflowReplayer.check(renamed, waiting).assertOk() }.stepId shouldBe "charge"
    }

    test("a reordered kind (ids that swapped a step and a timer) is flagged") {
        val (done, _) = histories()
        val swapped = order { id ->
            step("reserve") { "r" }
            sleep(1.days, id = "charge")
            step("cool-off") { "c" }
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
        }
        val problem = WorkflowReplayer.check(swapped, done).problems.single()
        problem.stepId shouldBe "charge"
        problem.message shouldContain "recorded a step 'charge', but the code now calls sleep 'charge'"
    }

    test("a removed step is flagged, in a finished history and in one in flight") {
        val (done, waiting) = histories()
        val removed = order { id ->
            step("charge") { "c" }
            sleep(1.days, id = "cool-off")
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
        }
        WorkflowReplayer.check(removed, done).problems.single().stepId shouldBe "reserve"
        WorkflowReplayer.check(removed, waiting).problems.single().stepId shouldBe "reserve"
    }

    test("a step added without a version is flagged where runs had gone past it; versioned, it passes") {
        val (done, waiting) = histories()
        val inserted = order { id ->
            step("reserve") { "r" }
            step("fraud-check") { true }
            step("charge") { "c" }
            sleep(1.days, id = "cool-off")
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
        }
        WorkflowReplayer.check(inserted, waiting).problems.single().actual!! shouldContain "step 'fraud-check'"
        WorkflowReplayer.check(inserted, done).isOk shouldBe false
        val versioned = order { id ->
            step("reserve") { "r" }
            if (version("fraud-check", WorkflowScope.DEFAULT_VERSION, 1) == 1) step("fraud-check") { true }
            step("charge") { "c" }
            sleep(1.days, id = "cool-off")
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
        }
        WorkflowReplayer.check(versioned, done).isOk shouldBe true
        WorkflowReplayer.check(versioned, waiting).isOk shouldBe true
    }

    test("removing an old path too early is caught: the history needs a version the code no longer supports") {
        val (done, waiting) = histories()
        val oldPathRemoved = order { id ->
            step("reserve") { "r" }
            version("fraud-check", 1, 1)
            step("fraud-check") { true }
            step("charge") { "c" }
            sleep(1.days, id = "cool-off")
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
        }
        for (history in listOf(done, waiting)) {
            val problem = WorkflowReplayer.check(oldPathRemoved, history).problems.single()
            problem.stepId shouldBe "version:fraud-check"
            problem.message shouldContain "supports versions 1..1"
        }
    }

    test("a finished run the code would carry on is flagged") {
        val (done, _) = histories()
        val longer = order { id ->
            step("reserve") { "r" }
            step("charge") { "c" }
            sleep(1.days, id = "cool-off")
            awaitSignal<String>("approve")
            step("ship") { "$id shipped" }
            step("survey") { "sent" }
        }
        val problem = WorkflowReplayer.check(longer, done).problems.single()
        problem.message shouldContain "the recorded run completed, but the code now goes on: it calls step 'survey'"
    }

    test("every history in a folder, the way a test guards a deploy") {
        val (done, waiting) = histories()
        val folder = Files.createTempDirectory("histories")
        done.write(folder.resolve("done.json"))
        waiting.write(folder.resolve("waiting.json"))
        Files.writeString(folder.resolve("notes.txt"), "not a history")
        WorkflowReplayer.checkAll(listOf(v1), folder).map { it.isOk } shouldBe listOf(true, true)
        WorkflowReplayer.assertAll(listOf(v1), folder)
        val other = workflow<String, String>("other") { it }
        WorkflowReplayer.checkAll(listOf(other), folder).flatMap { it.problems }.map { it.message }.first() shouldContain "workflow 'order'"
        shouldThrow<InvalidArgumentException> { RunHistory.fromJson("{\"runId\": 1}") }.message!! shouldContain "not a Stent run history"
        WorkflowReplayer.check(other, done).problems shouldHaveSize 1
    }
})
