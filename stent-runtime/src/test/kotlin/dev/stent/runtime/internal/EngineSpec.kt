package dev.stent.runtime.internal

import dev.stent.DuplicateStepIdException
import dev.stent.NonDeterminismException
import dev.stent.RunStatus
import dev.stent.WorkerConfig
import dev.stent.WorkflowDefinition
import dev.stent.WorkflowMisuseException
import dev.stent.runtime.internal.engine.EngineClock
import dev.stent.runtime.internal.engine.RunEnvironment
import dev.stent.runtime.internal.engine.RunExecution
import dev.stent.runtime.internal.engine.RunSlots
import dev.stent.runtime.internal.engine.RunThread
import dev.stent.step
import dev.stent.store.ClaimRequest
import dev.stent.store.NewRun
import dev.stent.workflow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.delay
import kotlinx.coroutines.joinAll
import kotlinx.coroutines.launch
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.test.StandardTestDispatcher
import kotlinx.coroutines.test.TestScope
import kotlinx.coroutines.test.runTest
import org.slf4j.LoggerFactory
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * An engine with no worker: the in-memory store, a virtual clock and one test dispatcher, so the
 * replay rules and quiescence run in milliseconds and a 30-day sleep passes at once.
 */
private class Engine(
    private val test: TestScope,
    val store: InMemoryStore,
    workflows: List<WorkflowDefinition<*, *>>,
    unloadThreshold: Duration = 5.seconds,
) {
    private val dispatcher = StandardTestDispatcher(test.testScheduler)
    private val now get() = test.testScheduler.currentTime
    val notifier = LocalNotifier()
    private val config = WorkerConfig(
        "engine-spec", workflows.associateBy { it.name }, 8, null, 30.seconds, 10.seconds, 10.seconds, 500.milliseconds,
        unloadThreshold, 10, 5.seconds, 64, 256, 1_000,
    )
    private val env = RunEnvironment(
        config, StoreAccess(store, 30_000, dispatcher), notifier, 1 shl 20,
        clock = object : EngineClock {
            override fun nowMs(): Long = now
            override fun nanoTime(): Long = now * 1_000_000
        },
        runDispatcher = { dispatcher }, timerDispatcher = dispatcher, stepDispatcher = dispatcher, stepPermits = Semaphore(256),
        slots = object : RunSlots {
            override suspend fun acquire() = Unit
            override fun release() = Unit
            override fun parked(run: RunExecution) = Unit
            override fun unparked(run: RunExecution) = Unit
        },
        log = LoggerFactory.getLogger("engine-spec"),
        lastRenewalNanos = { now * 1_000_000 }, onStopped = {},
    )

    fun start(workflow: String, id: String) = store.createRun(NewRun(id, workflow, "\"\"", "default", 0, 0))

    /** Claims what is ready and runs each claimed run until its outcome is written (finished, unloaded or released). */
    suspend fun claimAndRun(): List<String> {
        val claimed = store.claim(ClaimRequest("engine-spec", config.definitions.keys, emptyList(), 8, 30_000)).runs
        claimed.map { c ->
            val execution = RunExecution(env, c, now * 1_000_000)
            test.launch(dispatcher + RunThread.element, start = CoroutineStart.LAZY) { execution.execute() }.also {
                execution.job = it
                it.start()
            }
        }.joinAll()
        return claimed.map { it.id }
    }

    fun status(id: String) = store.getRun(id)!!.status
    fun failure(id: String) = store.getRun(id)!!.failure.orEmpty()
}

class EngineSpec : FunSpec({
    fun engine(test: TestScope, vararg workflows: WorkflowDefinition<*, *>, store: InMemoryStore? = null, threshold: Duration = 5.seconds) =
        Engine(test, store ?: InMemoryStore { test.testScheduler.currentTime }, workflows.toList(), threshold)

    test("a 30-day sleep passes in virtual time: the run unloads, and the replay after it does not run the finished step again") {
        runTest {
            val runs = AtomicInteger()
            val wf = workflow<String, String>("month") { _ ->
                step("before") { runs.incrementAndGet() }
                sleep(30.days)
                step("after") { "done" }
            }
            val e = engine(this, wf)
            e.start("month", "m")
            e.claimAndRun() shouldBe listOf("m")
            e.status("m") shouldBe RunStatus.WAITING
            e.store.getRun("m")!!.readyAt shouldBe 30.days.inWholeMilliseconds
            e.claimAndRun() shouldBe emptyList() // not due yet
            delay(30.days)
            e.claimAndRun() shouldBe listOf("m")
            e.status("m") shouldBe RunStatus.COMPLETED
            runs.get() shouldBe 1
            testScheduler.currentTime shouldBe 30.days.inWholeMilliseconds
        }
    }

    test("a wait within the unload threshold stays in memory; a longer one unloads") {
        runTest {
            val short = workflow<String, String>("short") { _ -> sleep(2.seconds); "slept" }
            val long = workflow<String, String>("long") { _ -> sleep(6.seconds); "slept" }
            val e = engine(this, short, long, threshold = 5.seconds)
            e.start("short", "s")
            e.start("long", "l")
            e.claimAndRun()
            e.status("s") shouldBe RunStatus.COMPLETED
            e.status("l") shouldBe RunStatus.WAITING
        }
    }

    test("replay: a recorded step of another kind, or one the code no longer reaches, is non-determinism") {
        runTest {
            val store = InMemoryStore { testScheduler.currentTime }
            val v1 = workflow<String, String>("evolving") { _ -> step("x") { 1 }; sleep(1.days, id = "nap"); "v1" }
            engine(this, v1, store = store).apply { start("evolving", "kind"); claimAndRun() }
            delay(1.days)
            val kindChanged = workflow<String, String>("evolving") { _ -> sleep(1.seconds, id = "x"); sleep(1.days, id = "nap"); "v2" }
            val e2 = engine(this, kindChanged, store = store)
            e2.claimAndRun()
            e2.status("kind") shouldBe RunStatus.FAILED
            e2.failure("kind") shouldContain NonDeterminismException::class.java.name
            e2.failure("kind") shouldContain "recorded a step 'x', but the code now calls sleep 'x'"

            val v3 = workflow<String, String>("evolving3") { _ -> step("x") { 1 }; sleep(1.days, id = "nap"); "v1" }
            engine(this, v3, store = store).apply { start("evolving3", "r"); claimAndRun() }
            delay(1.days)
            val dropped = workflow<String, String>("evolving3") { _ -> sleep(1.seconds, id = "nap"); "v2" }
            val e3 = engine(this, dropped, store = store)
            e3.claimAndRun()
            e3.status("r") shouldBe RunStatus.FAILED
            e3.failure("r") shouldContain "finished without reaching it"
        }
    }

    test("a duplicate step id and a Stent call inside a step body fail the run, even when the code catches them") {
        runTest {
            val dup = workflow<String, String>("dup") { _ ->
                step("a") { 1 }
                runCatching { step("a") { 2 } }
                "caught"
            }
            val misuse = workflow<String, String>("misuse") { _ ->
                val outer = this
                runCatching { step("outer") { outer.now(); 1 } }
                "caught"
            }
            val e = engine(this, dup, misuse)
            e.start("dup", "d")
            e.start("misuse", "m")
            e.claimAndRun()
            e.status("d") shouldBe RunStatus.FAILED
            e.failure("d") shouldContain DuplicateStepIdException::class.java.name
            e.status("m") shouldBe RunStatus.FAILED
            e.failure("m") shouldContain WorkflowMisuseException::class.java.name
            e.failure("m") shouldContain "now() was called inside step 'outer'"
        }
    }

    test("a cancel reaches a run waiting in memory at once, and the run goes CANCELLED without its next step") {
        runTest {
            val after = AtomicInteger()
            val wf = workflow<String, String>("waits") { _ -> sleep(3.seconds); step("after") { after.incrementAndGet() }; "done" }
            val e = engine(this, wf)
            e.start("waits", "w")
            launch {
                delay(1.seconds)
                e.store.requestCancel("w")?.status shouldBe RunStatus.RUNNING
                e.notifier.cancelRequested("w")
            }
            e.claimAndRun()
            e.status("w") shouldBe RunStatus.CANCELLED
            after.get() shouldBe 0
            testScheduler.currentTime shouldBe 1.seconds.inWholeMilliseconds
        }
    }
})
