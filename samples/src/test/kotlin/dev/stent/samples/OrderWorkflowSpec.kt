package dev.stent.samples

import dev.stent.SignalTimeoutException
import dev.stent.WorkflowFailedException
import dev.stent.WorkflowReplayer
import dev.stent.signal
import dev.stent.test.StentKotestExtension
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import java.nio.file.Path
import kotlin.time.Duration.Companion.hours

/** The order workflow of the quick start, tested with the test kit: its day-long approval window passes at once. */
class OrderWorkflowSpec : FunSpec({
    val stent = StentKotestExtension {
        register(order)
        stubStep(order, "authorize") { Authorization("test-auth", 1999) } // no payment service in tests
    }
    extension(stent)

    test("an approved order ships") {
        val env = stent.env
        val run = env.client.start(order, OrderRequest("o-1", 1999))
        env.client.signal(run.id, "approval", Approval("ana"))
        env.await(run) shouldBe "order o-1 shipped (test-auth, 1999 cents, approved by ana)"
    }

    test("an order nobody approves fails after a day, at once") {
        val env = stent.env
        val run = env.client.start(order, OrderRequest("o-2", 500))
        env.advanceTimeBy(23.hours)
        run.describe().status shouldBe dev.stent.RunStatus.WAITING
        val failed = shouldThrow<WorkflowFailedException> { env.await(run) }
        failed.failure.type shouldBe SignalTimeoutException::class.java.name
    }

    test("the order workflow still replays the histories recorded in production") {
        WorkflowReplayer.assertAll(listOf(order), Path.of("src/test/resources/histories"))
    }
})
