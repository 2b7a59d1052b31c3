package dev.stent.test

import dev.stent.RecordKind
import dev.stent.RunStatus
import dev.stent.SignalTimeoutException
import dev.stent.Stent
import dev.stent.awaitSignal
import dev.stent.child
import dev.stent.exposed.sqlite
import dev.stent.patched
import dev.stent.queueLimits
import dev.stent.retryPolicy
import dev.stent.signal
import dev.stent.startByName
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldHaveSize
import io.kotest.matchers.comparables.shouldBeGreaterThanOrEqualTo
import io.kotest.matchers.longs.shouldBeLessThan
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import kotlinx.serialization.Serializable
import java.nio.file.Files
import java.time.Instant
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.hours
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource

/** How long a trial lasts, how long the user has to answer, how the bill retries, and how often the card is declined first. */
@Serializable
data class TrialPlan(val user: String, val trialMs: Long, val answerMs: Long, val retryMs: Long, val declines: Int)

/** Bill attempts, by user: the step body counts them, so a test can see how many ran. */
val billAttempts = java.util.concurrent.ConcurrentHashMap<String, AtomicInteger>()

/** A trial: welcome, wait out the trial, wait for the user's answer (or time out), bill with exponential back-off. */
val trial = workflow<TrialPlan, String>("trial") { plan ->
    step("welcome") { "welcomed ${plan.user}" }
    sleep(plan.trialMs.milliseconds)
    val answer = try {
        awaitSignal<String>("answer", timeout = plan.answerMs.milliseconds)
    } catch (e: SignalTimeoutException) {
        "no answer"
    }
    val policy = retryPolicy {
        maxAttempts = 6
        initialDelay = plan.retryMs.milliseconds
        backoffFactor = 2.0
        maxDelay = 1.days
        jitter = 0.0
    }
    val bill = step("bill", retry = policy) {
        val n = billAttempts.computeIfAbsent(plan.user) { AtomicInteger() }.incrementAndGet()
        if (n <= plan.declines) error("card declined ($n)")
        "billed"
    }
    "$answer, $bill"
}

/** Charges through a payment service: a step a test stubs. */
val checkout = workflow<String, String>("checkout") { order ->
    val receipt = step<String>("charge") { throw IllegalStateException("the real payment service is not reachable from tests") }
    "$order paid: $receipt"
}

/** A child workflow a test replaces. */
val fraudCheck = workflow<String, Boolean>("fraud-check") { _ -> step<Boolean>("call the fraud service") { error("not in tests") } }

val guarded = workflow<String, String>("guarded") { order ->
    if (child(fraudCheck, order)) "$order held" else "$order accepted"
}

/** Polls every hour, 24 times, continuing as new each time so its history stays small. */
val poller = workflow<Int, Int>("poller") { round ->
    step("poll") { round }
    if (round == 24) return@workflow round
    sleep(1.hours)
    continueAsNew(round + 1)
}

val waitsForever = workflow<String, String>("waits-for-approval") { _ -> awaitSignal<String>("approve") }

val ticks = workflow<String, String>("tick") { name -> step("tick") { name } }

/** Starts at most one run a minute (the queue's rate limit). */
val limited = workflow<Int, Int>("limited", { queue = "one-a-minute" }) { n -> step("work") { n } }

/** Collects signals "item" until "done", one month per run, continuing as new; asks twice about one change. */
val inbox = workflow<List<String>, List<String>>("inbox") { items ->
    val item = awaitSignal<String>("item")
    if (patched("uppercase") && patched("uppercase")) Unit
    val all = items + (if (version("uppercase", 0, 1) == 1) item.uppercase() else item)
    if (item == "done") all else continueAsNew(all)
}

/** A parent whose child continues as new three times before it answers. */
val counter = workflow<Int, Int>("counter") { n -> if (n >= 3) n else continueAsNew(n + 1) }
val counting = workflow<String, Int>("counting") { _ -> child(counter, 0) + 100 }

class TestKitSpec : FunSpec({
    val stent = StentKotestExtension {
        register(trial, checkout, guarded, fraudCheck, poller, waitsForever, ticks, limited, inbox, counter, counting)
        worker { limit(queueLimits("one-a-minute") { rateLimit(1, 1.minutes) }) }
        stubStep(checkout, "charge") { "receipt-1" }
        stubWorkflow(fraudCheck) { order -> order.startsWith("x") }
    }
    extension(stent)

    test("a 30-day trial, a 7-day signal timeout and exponential retries complete at once on the virtual clock") {
        val env = stent.env
        val began = env.now
        val real = TimeSource.Monotonic.markNow()
        val plan = TrialPlan("ann", 30.days.inWholeMilliseconds, 7.days.inWholeMilliseconds, 1.hours.inWholeMilliseconds, declines = 3)
        val run = env.client.start(trial, plan)
        env.await(run) shouldBe "no answer, billed"
        val realMs = real.elapsedNow().inWholeMilliseconds
        val virtualMs = env.now.toEpochMilli() - began.toEpochMilli()
        println("test kit: ${virtualMs / 3_600_000.0} virtual hours in $realMs ms of real time")
        // 30 days, 7 days, then back-offs of 1, 2 and 4 hours before the fourth attempt
        virtualMs shouldBeGreaterThanOrEqualTo (37.days + 7.hours).inWholeMilliseconds
        // the clock is virtual: 37 days did not take more than a hundred-thousandth of that (32 s) of real time
        realMs shouldBeLessThan virtualMs / 100_000
        billAttempts.getValue("ann").get() shouldBe 4
        val bill = env.records(run.id).single { it.id == "bill" }
        bill.attempts shouldBe 4
    }

    test("the same definition runs unchanged on a real worker with real time") {
        val dir = Files.createTempDirectory("stent-real")
        Stent.sqlite(dir.resolve("real.db").toString()).use { real ->
            stentWorker(real) { register(trial) }.use {
                val run = real.client.start(trial, TrialPlan("bob", 50, 5_000, 20, declines = 1))
                delay(300.milliseconds)
                real.client.signal(run.id, "answer", "yes")
                run.await(30.seconds) shouldBe "yes, billed"
                billAttempts.getValue("bob").get() shouldBe 2
            }
        }
    }

    test("a signal sent before the timeout is taken; advanceTimeBy moves the clock by as much and no more") {
        val env = stent.env
        val run = env.client.start(trial, TrialPlan("cid", 30.days.inWholeMilliseconds, 7.days.inWholeMilliseconds, 1_000, declines = 0))
        val start = env.now
        env.advanceTimeBy(31.days)
        (env.now.toEpochMilli() - start.toEpochMilli()) shouldBe 31.days.inWholeMilliseconds
        run.describe().status shouldBe RunStatus.WAITING
        env.client.signal(run.id, "answer", "upgrade")
        env.await(run) shouldBe "upgrade, billed"
        // the answer came a day into the week it had: no time had to pass for it
        (env.now.toEpochMilli() - start.toEpochMilli()) shouldBe 31.days.inWholeMilliseconds
    }

    test("a stubbed step and a stubbed child workflow replace the real ones for the test") {
        val env = stent.env
        env.await(env.client.start(checkout, "o-1")) shouldBe "o-1 paid: receipt-1"
        env.await(env.client.start(guarded, "o-2")) shouldBe "o-2 accepted"
        env.await(env.client.start(guarded, "x-3")) shouldBe "x-3 held"
    }

    test("continue-as-new: the chain's output, each run's history small") {
        val env = stent.env
        val run = env.client.start(poller, 1, id = "poll")
        env.await(run) shouldBe 24
        val first = run.describe()
        first.continuedAs shouldBe "poll~2"
        first.output shouldBe null
        val last = env.client.describe("poll~24")
        last.status shouldBe RunStatus.COMPLETED
        for (i in 2..24) env.records("poll~$i").size shouldBe if (i == 24) 1 else 2
        env.records("poll").map { it.kind } shouldBe listOf(RecordKind.STEP, RecordKind.SLEEP)
    }

    test("runs a queue's rate limit holds wait on the virtual clock, a minute apart") {
        val env = stent.env
        val start = env.now
        val runs = (1..3).map { env.client.start(limited, it) }
        runs.map { env.await(it) } shouldBe listOf(1, 2, 3)
        (env.now.toEpochMilli() - start.toEpochMilli()) shouldBeGreaterThanOrEqualTo 2.minutes.inWholeMilliseconds
    }

    test("signals sent to the first id of a chain reach its latest run; a version asked twice has one answer") {
        val env = stent.env
        val run = env.client.start(inbox, emptyList(), id = "inbox")
        for (item in listOf("a", "b", "c", "done")) {
            env.client.signal("inbox", "item", item) // always the first id
            env.runUntilIdle()
        }
        env.await(run) shouldBe listOf("A", "B", "C", "DONE")
        env.client.describe("inbox~4").records.map { it.id } shouldBe listOf("signal:item#1", "version:uppercase")
    }

    test("a cancel sent to the first id of a chain cancels its latest run") {
        val env = stent.env
        val run = env.client.start(inbox, emptyList(), id = "box")
        env.client.signal("box", "item", "a")
        env.runUntilIdle()
        env.client.describe("box~2").status shouldBe RunStatus.WAITING
        run.cancel() shouldBe RunStatus.CANCELLED
        env.client.describe("box~2").status shouldBe RunStatus.CANCELLED
        shouldThrow<dev.stent.WorkflowCancelledException> { env.await(run) }
    }

    test("a child that continues as new gives its parent the chain's output, once") {
        val env = stent.env
        val run = env.client.start(counting, "p", id = "p")
        env.await(run) shouldBe 103
        env.client.describe("p/child:counter#1").continuedAs shouldBe "p/child:counter#1~2"
        env.client.describe("p/child:counter#1~4").status shouldBe RunStatus.COMPLETED
        env.records("p").map { it.id } shouldBe listOf("child:counter#1")
    }

    test("a due run whose workflow the environment does not register is named, not waited for") {
        val env = stent.env
        val run = env.client.startByName<String, String>("not-registered", "x")
        val e = shouldThrow<IllegalStateException> { env.await(run) }
        e.message shouldContain "workflow 'not-registered' is due, but no workflow of that name is registered"
    }

    test("schedules fire on the virtual clock") {
        val env = stent.env
        val start = env.now
        env.client.schedule("nightly", "0 2 * * *", ticks, "night")
        env.advanceTimeBy(3.days)
        val runs = env.client.list(workflowName = "tick")
        runs shouldHaveSize 3
        runs.forEach { it.status shouldBe RunStatus.COMPLETED }
        runs.map { it.createdAt }.forEach { it.isAfter(start) shouldBe true; it.isBefore(start.plusSeconds(3 * 86_400 + 1)) shouldBe true }
    }

    test("awaiting a run that waits for a signal nobody sends fails at once, naming the signal") {
        val env = stent.env
        val run = env.client.start(waitsForever, "o-9")
        val e = shouldThrow<StuckRunException> { env.await(run) }
        e.message shouldContain "approve"
        e.runId shouldBe run.id
    }

    test("the virtual clock is the workflow's now() and the database's") {
        val env = stent.env
        val nowFlow = workflow<String, Long>("now") { _ -> now().toEpochMilli() }
        StentTestEnvironment { register(nowFlow); startTime = Instant.parse("2030-01-01T00:00:00Z") }.use { other ->
            val run = other.client.start(nowFlow, "x")
            other.await(run) shouldBe Instant.parse("2030-01-01T00:00:00Z").toEpochMilli()
            run.describe().createdAt shouldBe Instant.parse("2030-01-01T00:00:00Z")
        }
        env.now.isBefore(Instant.now().plusSeconds(60)) shouldBe true
    }

    test("advanceTimeBy refuses to go back or to infinity") {
        shouldThrow<IllegalArgumentException> { stent.env.advanceTimeBy((-1).minutes) }
        shouldThrow<IllegalArgumentException> { stent.env.advanceTimeBy(kotlin.time.Duration.INFINITE) }
    }
})

private suspend fun delay(d: kotlin.time.Duration) = kotlinx.coroutines.delay(d)
