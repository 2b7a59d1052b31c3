package dev.stent.it

import dev.stent.RunStatus
import dev.stent.StepFailedException
import dev.stent.StepTimeoutException
import dev.stent.WorkflowCancelledException
import dev.stent.WorkflowFailedException
import dev.stent.retryPolicy
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.longs.shouldBeLessThan
import io.kotest.matchers.shouldBe
import io.kotest.matchers.shouldNotBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.withContext
import java.time.Instant
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.TimeSource

/**
 * Stop means stop, within a bound: cancel, deadlines, step timeouts and shutdown reach step bodies
 * that block, and a body that ignores interruption is abandoned. Run against every store.
 */
abstract class StopSuite(store: TestStore) : FunSpec({

    /** A blocking body, the stand-in for JDBC or HTTP: sleeps until interrupted (and says so) or for [forMs]. */
    fun blockingBody(interrupted: AtomicBoolean, started: CountDownLatch, forMs: Long = 60_000): String {
        started.countDown()
        try {
            Thread.sleep(forMs)
        } catch (e: InterruptedException) {
            interrupted.set(true)
            throw e
        }
        return "slept"
    }

    /** A body that ignores interruption: waits for [release], swallowing every interrupt. */
    fun stubborn(release: CountDownLatch) {
        while (true) {
            try {
                if (release.await(20, TimeUnit.MILLISECONDS)) return
            } catch (e: InterruptedException) {
                // ignored, as badly written blocking code does
            }
        }
    }

    test("cancel interrupts a blocking Kotlin step body: the run goes CANCELLED and nothing the body did is recorded") {
        withStore(store) { stent ->
            val interrupted = AtomicBoolean()
            val started = CountDownLatch(1)
            val after = AtomicInteger()
            val wf = workflow<String, String>("blocking-cancel") { _ ->
                step("call") { blockingBody(interrupted, started) }
                step("after") { after.incrementAndGet() }
                "finished"
            }
            stentWorker(stent) { register(wf) }.use {
                val run = stent.client.start(wf, "", id = "bc")
                withContext(Dispatchers.IO) { started.await(20, TimeUnit.SECONDS) } shouldBe true
                run.cancel() shouldBe RunStatus.RUNNING
                shouldThrow<WorkflowCancelledException> { run.await(20.seconds) }
                interrupted.get() shouldBe true
                after.get() shouldBe 0
                run.describe().records.shouldBeEmpty() // no failed attempt, no result
            }
        }
    }

    test("a body that ignores interruption is abandoned after stopTimeout: the run is CANCELLED and what it returns later is not recorded") {
        withStore(store) { stent ->
            val started = CountDownLatch(1)
            val release = CountDownLatch(1)
            val returned = CountDownLatch(1)
            val wf = workflow<String, String>("stubborn") { _ ->
                step("call") {
                    started.countDown()
                    stubborn(release)
                    returned.countDown()
                    "late"
                }
            }
            val worker = stentWorker(stent) { register(wf); stopTimeout = 1.seconds }
            try {
                val run = stent.client.start(wf, "", id = "st")
                withContext(Dispatchers.IO) { started.await(20, TimeUnit.SECONDS) } shouldBe true
                run.cancel()
                shouldThrow<WorkflowCancelledException> { run.await(20.seconds) }
                worker.activeRuns shouldBe 0 // the slot is free again
                release.countDown()
                withContext(Dispatchers.IO) { returned.await(20, TimeUnit.SECONDS) } shouldBe true
                delay(300.milliseconds) // let the late return reach the engine (it must not write)
                val info = run.describe()
                info.status shouldBe RunStatus.CANCELLED
                info.records.shouldBeEmpty()
            } finally {
                release.countDown()
                worker.close()
            }
        }
    }

    test("shutdown returns within grace + stopTimeout + 2 s with a body that ignores interruption, and leaves its lease to expire") {
        val db = store.newDb()
        db.open().use { stent ->
            val started = CountDownLatch(1)
            val release = CountDownLatch(1)
            val executions = AtomicInteger()
            val wf = workflow<String, String>("stuck-at-shutdown") { _ ->
                step("call") {
                    if (executions.incrementAndGet() == 1) {
                        started.countDown()
                        stubborn(release)
                    }
                    "done-${executions.get()}"
                }
            }
            val worker = stentWorker(stent) { register(wf); stopTimeout = 1.seconds; leaseDuration = 2.seconds }
            try {
                val run = stent.client.start(wf, "", id = "sh")
                withContext(Dispatchers.IO) { started.await(20, TimeUnit.SECONDS) } shouldBe true
                val mark = TimeSource.Monotonic.markNow()
                worker.shutdown(grace = 200.milliseconds)
                // liveness, not speed: the bound is grace + stopTimeout + 2 s
                mark.elapsedNow().inWholeMilliseconds shouldBeLessThan (200 + 1_000 + 2_000 + 1_000).toLong()
                val left = run.describe()
                left.status shouldBe RunStatus.RUNNING // not released: the body may still be running
                left.leaseOwner shouldBe worker.id
                stentWorker(stent) { register(wf) }.use {
                    run.await(30.seconds) shouldBe "done-2" // taken over once the lease expired
                }
            } finally {
                release.countDown()
                worker.close()
            }
        }
    }

    test("a body that swallows CancellationException cannot record its result") {
        withStore(store) { stent ->
            val started = CountDownLatch(1)
            val swallowed = CountDownLatch(1)
            val wf = workflow<String, String>("swallower") { _ ->
                step("call") {
                    started.countDown()
                    try {
                        delay(60.seconds)
                    } catch (e: CancellationException) {
                        swallowed.countDown() // and returns a value as if nothing happened
                    }
                    "swallowed"
                }
            }
            stentWorker(stent) { register(wf) }.use {
                val run = stent.client.start(wf, "", id = "sw")
                withContext(Dispatchers.IO) { started.await(20, TimeUnit.SECONDS) } shouldBe true
                run.cancel()
                shouldThrow<WorkflowCancelledException> { run.await(20.seconds) }
                withContext(Dispatchers.IO) { swallowed.await(20, TimeUnit.SECONDS) } shouldBe true
                run.describe().records.shouldBeEmpty()
            }
        }
    }

    test("a step timeout interrupts the attempt, fails it with StepTimeoutException, and the policy retries it") {
        withStore(store) { stent ->
            val attempts = AtomicInteger()
            val interruptions = AtomicInteger()
            val wf = workflow<String, String>("slow-step") { _ ->
                step("call", retryPolicy { maxAttempts = 3; initialDelay = 10.milliseconds }, timeout = 300.milliseconds) {
                    if (attempts.incrementAndGet() < 3) {
                        try {
                            Thread.sleep(60_000)
                        } catch (e: InterruptedException) {
                            interruptions.incrementAndGet()
                            throw e
                        }
                    }
                    "third time"
                }
            }
            val always = workflow<String, String>("always-slow") { _ ->
                step("call", retryPolicy { maxAttempts = 2; initialDelay = 10.milliseconds }, timeout = 200.milliseconds) {
                    delay(60.seconds)
                    "never"
                }
            }
            stentWorker(stent) { register(wf); register(always) }.use {
                stent.client.start(wf, "", id = "to").await(20.seconds) shouldBe "third time"
                interruptions.get() shouldBe 2
                val info = stent.client.describe("to")
                info.records.single().attempts shouldBe 3

                val e = shouldThrow<WorkflowFailedException> { stent.client.start(always, "", id = "to2").await(20.seconds) }
                e.failure.type shouldBe StepFailedException::class.java.name
                e.failure.cause!!.type shouldBe StepTimeoutException::class.java.name
                e.failure.cause!!.message!! shouldContain
                    "attempt 2 of step 'call' in workflow 'always-slow' (run 'to2') did not finish within its timeout of 200ms"
            }
        }
    }

    test("a deadline cancels a run wherever it is: sleeping, blocked in a step, or not yet claimed") {
        withStore(store) { stent ->
            val interrupted = AtomicBoolean()
            val started = CountDownLatch(1)
            val sleeper = workflow<String, String>("dl-sleeper") { _ -> sleep(1.days); "woke" }
            val blocked = workflow<String, String>("dl-blocked") { _ -> step("call") { blockingBody(interrupted, started) } }
            val timed = workflow<String, String>("dl-default", { timeout = 1.seconds }) { _ -> sleep(1.days); "woke" }
            stentWorker(stent) {
                register(sleeper); register(blocked); register(timed); unloadThreshold = 100.milliseconds; pollInterval = 100.milliseconds
            }.use {
                val soon = Instant.now().plusMillis(1_500)
                val a = stent.client.start(sleeper, "", id = "dl-a", deadline = soon)
                val b = stent.client.start(blocked, "", id = "dl-b", deadline = soon)
                // delayed past its deadline: cancelled at the deadline, never started
                val c = stent.client.start(sleeper, "", id = "dl-c", delay = 1.days, deadline = soon)
                val d = stent.client.start(timed, "", id = "dl-d")
                eventually("a unloads while it waits for its day") { stent.statusOf("dl-a") == RunStatus.WAITING }
                stent.client.describe("dl-a").readyAt shouldBe stent.client.describe("dl-a").deadline // the deadline is its next timer
                for (run in listOf(a, b, c, d)) {
                    val e = shouldThrow<WorkflowCancelledException> { run.await(20.seconds) }
                    e.reason!! shouldContain "passed its deadline"
                }
                interrupted.get() shouldBe true
                stent.client.describe("dl-c").startedAt shouldNotBe null // claimed only to be cancelled
                stent.client.describe("dl-c").records.shouldBeEmpty()
                stent.client.describe("dl-b").records.shouldBeEmpty()
            }
        }
    }
})

class SqliteStopSpec : StopSuite(TestStore.Sqlite)

class PostgresStopSpec : StopSuite(TestStore.Postgres)
