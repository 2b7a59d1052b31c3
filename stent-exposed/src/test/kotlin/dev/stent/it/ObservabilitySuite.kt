package dev.stent.it

import dev.stent.RunStatus
import dev.stent.StentEvent
import dev.stent.codecOf
import dev.stent.retryPolicy
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.slf4j.MDCContext
import kotlinx.coroutines.withContext
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** What a run tells listeners and logs, run against every store. */
abstract class ObservabilitySuite(store: TestStore) : FunSpec({

    /** One line per event of [runId], leaving out waits in memory (how many there are depends on timing). */
    fun describe(e: StentEvent): String? = when (e) {
        is StentEvent.RunStarted -> "started created=${e.created} queue=${e.queue}"
        is StentEvent.RunClaimed -> "claimed resumed=${e.resumed}"
        is StentEvent.StepStarted -> "step ${e.stepId}#${e.attempt}"
        is StentEvent.StepCompleted -> "completed ${e.stepId}#${e.attempt}"
        is StentEvent.StepFailed -> "failed ${e.stepId}#${e.attempt} retrying=${e.isRetrying} ${e.failure.message}"
        is StentEvent.RunWaiting -> if (e.unloaded) "unloaded signals=${e.signals} timer=${e.until != null}" else null
        is StentEvent.LeaseLost -> "lease lost"
        is StentEvent.RunReleased -> "released ${e.reason}"
        is StentEvent.RunFinished -> "finished ${e.status} timed=${e.durationMillis != null}"
        is StentEvent.ClaimBatch, is StentEvent.SignalReceived -> null
    }

    fun StentEvent.isOf(runId: String) = this is StentEvent.RunEvent && this.runId == runId

    test("listeners hear a run's events in order: a retry, a sleep that unloads, a signal; one that throws breaks nothing") {
        withStore(store) { stent ->
            val events = CopyOnWriteArrayList<StentEvent>()
            val workerEvents = CopyOnWriteArrayList<StentEvent>()
            stent.addListener { events += it }
            stent.addListener { error("a broken listener") }
            stent.addListener { throw AssertionError("a listener's failed assertion") }
            val tries = AtomicInteger()
            val observed = workflow<String, String>("observed", { retryPolicy = retryPolicy { initialDelay = 10.milliseconds } }) { _ ->
                step("a") { check(tries.incrementAndGet() > 1) { "first try fails" }; "a" }
                sleep(1500.milliseconds)
                val go = awaitSignal("go", codecOf<String>())
                step("b") { go }
            }
            stentWorker(stent) {
                register(observed)
                unloadThreshold = 1.seconds
                pollInterval = 50.milliseconds
                listener { workerEvents += it }
            }.use {
                val run = stent.client.start(observed, "", id = "obs-1")
                eventually("it waits for the signal", 30.seconds) {
                    stent.client.describe("obs-1").let { it.status == RunStatus.WAITING && it.waitingForSignals == setOf("go") }
                }
                stent.client.signal("obs-1", "go", "went", codecOf<String>())
                run.await(30.seconds) shouldBe "went"
                eventually("the finish is heard") { events.any { it is StentEvent.RunFinished } }
            }
            // the client's start is heard once, after its commit: a worker may claim the run before that
            events.filter { it.isOf("obs-1") && it is StentEvent.RunStarted }.mapNotNull(::describe) shouldBe listOf("started created=true queue=default")
            // what the worker reports, in the order it happened
            events.filter { it.isOf("obs-1") && it !is StentEvent.RunStarted }.mapNotNull(::describe) shouldBe listOf(
                "claimed resumed=false",
                "step a#1",
                "failed a#1 retrying=true first try fails",
                "step a#2",
                "completed a#2",
                "unloaded signals=[] timer=true",
                "claimed resumed=true",
                "unloaded signals=[go] timer=false",
                "claimed resumed=true",
                "step b#1",
                "completed b#1",
                "finished COMPLETED timed=true",
            )
            // the worker's own listener hears what its runs do, not the client's start
            workerEvents.mapNotNull(::describe) shouldBe events.filter { it.isOf("obs-1") && it !is StentEvent.RunStarted }.mapNotNull(::describe)
        }
    }

    test("a child's start, a cancel no worker holds and each claim statement are heard too") {
        withStore(store) { stent ->
            val events = CopyOnWriteArrayList<StentEvent>()
            stent.addListener { events += it }
            val child = workflow<String, String>("obs-child") { name -> step("c") { "child $name" } }
            val parent = workflow<String, String>("obs-parent") { name -> startChild(child, name, id = "kid").await() }
            val sleeper = workflow<String, String>("obs-sleeper") { _ ->
                awaitSignal("never", codecOf<String>())
            }
            stentWorker(stent) {
                register(parent)
                register(child)
                register(sleeper)
                unloadThreshold = 0.seconds
                pollInterval = 50.milliseconds
            }.use {
                stent.client.start(parent, "p", id = "obs-p").await(30.seconds) shouldBe "child p"
                stent.client.start(sleeper, "", id = "obs-s")
                eventually("the sleeper is unloaded", 30.seconds) { stent.client.describe("obs-s").status == RunStatus.WAITING }
                stent.client.cancel("obs-s") shouldBe RunStatus.CANCELLED
                stent.client.cancel("obs-s") shouldBe RunStatus.CANCELLED // already cancelled: heard once
            }
            val started = events.filterIsInstance<StentEvent.RunStarted>().map { "${it.runId} ${it.workflowName} created=${it.created}" }
            started.filter { "kid" in it } shouldBe listOf("obs-p/kid obs-child created=true")
            events.filterIsInstance<StentEvent.RunFinished>().filter { it.runId == "obs-s" }.map { it.status } shouldBe listOf(RunStatus.CANCELLED)
            val claims = events.filterIsInstance<StentEvent.ClaimBatch>()
            // every run is heard claimed; the child (created by its parent) through a claim statement at least, while a
            // start beside a worker with a free slot needs none
            events.filterIsInstance<StentEvent.RunClaimed>().map { it.runId }.toSet().containsAll(listOf("obs-p", "obs-p/kid", "obs-s")) shouldBe true
            (claims.sumOf { it.size } >= 1) shouldBe true
            claims.all { it.size <= it.requested && it.durationNanos > 0 } shouldBe true
        }
    }

    test("a tracing hook's context is stored with the run and the signal and handed to the worker that takes them") {
        withStore(store) { stent ->
            val events = CopyOnWriteArrayList<StentEvent>()
            stent.addListener { events += it }
            val current = java.util.concurrent.atomic.AtomicReference<String?>()
            val inStep = CopyOnWriteArrayList<String>()
            stent.setTracing(
                object : dev.stent.StentTracing {
                    override fun capture(): String? = current.get()
                    override fun runContext(claimed: StentEvent.RunClaimed) = kotlinx.coroutines.CoroutineName("traced-run")
                    override fun stepContext(started: StentEvent.StepStarted) = kotlinx.coroutines.CoroutineName("traced-${started.stepId}")
                },
            )
            val traced = workflow<String, String>("traced") { _ ->
                val go = awaitSignal("go", codecOf<String>())
                step("s") {
                    inStep += currentCoroutineContext()[kotlinx.coroutines.CoroutineName]!!.name
                    go
                }
            }
            stentWorker(stent) {
                register(traced)
                pollInterval = 50.milliseconds
            }.use {
                current.set("starter")
                val run = stent.client.start(traced, "", id = "tr-1")
                current.set("x".repeat(dev.stent.StentTracing.MAX_TRACE_CONTEXT + 1)) // too long: not stored
                stent.client.start(traced, "", id = "tr-2")
                current.set("sender")
                eventually("it waits", 30.seconds) { stent.client.describe("tr-1").waitingForSignals == setOf("go") }
                stent.client.signal("tr-1", "go", "went", codecOf<String>())
                run.await(30.seconds) shouldBe "went"
            }
            events.filterIsInstance<StentEvent.RunClaimed>().filter { it.runId == "tr-1" }.map { it.traceContext }.toSet() shouldBe setOf("starter")
            events.filterIsInstance<StentEvent.RunClaimed>().filter { it.runId == "tr-2" }.map { it.traceContext }.toSet() shouldBe setOf(null)
            events.filterIsInstance<StentEvent.SignalReceived>().map { "${it.signalName} ${it.traceContext}" } shouldBe listOf("go sender")
            inStep shouldBe listOf("traced-s")
        }
    }

    // The test classpath logs through slf4j-simple, which keeps no MDC: the check reads the MDC the engine gives the
    // body's coroutine (kotlinx-coroutines-slf4j installs it on the body's thread under a backend that keeps one).
    test("step bodies run with the run, the step and the attempt in their SLF4J MDC") {
        withStore(store) { stent ->
            val logged = workflow<String, String>("logged", { retryPolicy = retryPolicy { initialDelay = 10.milliseconds } }) { _ ->
                // what the workflow's own code puts in the MDC stays there inside its steps
                withContext(MDCContext(currentCoroutineContext()[MDCContext]?.contextMap.orEmpty() + ("tenant" to "t-7"))) {
                    step("where") {
                        val mdc = currentCoroutineContext()[MDCContext]?.contextMap.orEmpty()
                        val here = listOf("stent.runId", "stent.workflow", "stent.stepId", "stent.attempt", "tenant").joinToString(" ") { mdc[it] ?: "-" }
                        check(attempt > 1) { "again" }
                        here
                    }
                }
            }
            stentWorker(stent) {
                register(logged)
                pollInterval = 50.milliseconds
            }.use {
                stent.client.start(logged, "", id = "mdc-1").await(30.seconds) shouldBe "mdc-1 logged where 2 t-7"
            }
        }
    }
})

class SqliteObservabilitySpec : ObservabilitySuite(TestStore.Sqlite)

class PostgresObservabilitySpec : ObservabilitySuite(TestStore.Postgres)
