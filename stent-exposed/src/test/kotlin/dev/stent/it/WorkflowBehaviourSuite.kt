package dev.stent.it

import dev.stent.AwaitTimeoutException
import dev.stent.ChildFailedException
import dev.stent.DuplicateStepIdException
import dev.stent.NonRetryableException
import dev.stent.PayloadException
import dev.stent.PayloadProblem
import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunConflictException
import dev.stent.RunStatus
import dev.stent.SignalTimeoutException
import dev.stent.StentOptions
import dev.stent.StepFailedException
import dev.stent.UnknownRunException
import dev.stent.WorkflowCancelledException
import dev.stent.WorkflowFailedException
import dev.stent.awaitEvent
import dev.stent.awaitSignal
import dev.stent.child
import dev.stent.getEvent
import dev.stent.retryPolicy
import dev.stent.setEvent
import dev.stent.signal
import dev.stent.startByName
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.collections.shouldContainExactly
import io.kotest.matchers.ints.shouldBeGreaterThan
import io.kotest.matchers.longs.shouldBeGreaterThanOrEqual
import io.kotest.matchers.shouldBe
import io.kotest.matchers.shouldNotBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.serialization.Serializable
import java.io.IOException
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

@Serializable
data class Order(val id: String, val amount: Long)

/** The engine's behaviour, run unchanged against every store. */
abstract class WorkflowBehaviourSuite(store: TestStore) : FunSpec({

    test("a workflow runs its steps once and returns its output; describe shows every record") {
        withStore(store) { stent ->
            val runs = AtomicInteger()
            val wf = workflow<Order, String>("charge") { o ->
                val a = step("authorize") { runs.incrementAndGet(); "auth-${o.id}" }
                val b = step("capture") { runs.incrementAndGet(); o.amount * 2 }
                "$a/$b"
            }
            stentWorker(stent) { register(wf) }.use {
                val run = stent.client.start(wf, Order("o1", 21), id = "o1")
                run.await(10.seconds) shouldBe "auth-o1/42"
                val info = run.describe()
                info.status shouldBe RunStatus.COMPLETED
                info.records.map { it.id } shouldContainExactly listOf("authorize", "capture")
                info.records.map { it.result } shouldContainExactly listOf("\"auth-o1\"", "42")
                info.startedAt!!.isBefore(info.createdAt) shouldBe false
                info.finishedAt!!.isBefore(info.startedAt!!) shouldBe false
                info.output shouldBe "\"auth-o1/42\""
                runs.get() shouldBe 2
            }
        }
    }

    test("starting an id that exists returns the existing run; another workflow's id is a conflict") {
        withStore(store) { stent ->
            val wf = workflow<Order, Long>("idem") { o -> step("x") { o.amount } }
            val other = workflow<Order, Long>("other") { o -> o.amount }
            val first = stent.client.start(wf, Order("a", 1), id = "same")
            val created = stent.client.describe("same").createdAt
            stent.client.start(wf, Order("a", 999), id = "same")
            // the second start changed nothing: same input, same creation time, still one run
            stent.client.describe("same").input shouldContain "\"amount\":1"
            stent.client.describe("same").createdAt shouldBe created
            stent.client.list().map { it.id } shouldBe listOf("same")
            shouldThrow<RunConflictException> { stent.client.start(other, Order("a", 1), id = "same") }
                .message shouldContain "exists already as workflow 'idem'"
            stentWorker(stent) { register(wf) }.use { first.await(10.seconds) shouldBe 1L }
        }
    }

    test("a long durable sleep unloads the run (WAITING, no lease, no coroutine) and it completes when due") {
        withStore(store) { stent ->
            val before = AtomicInteger()
            val wf = workflow<String, String>("sleeper") { _ ->
                step("before") { before.incrementAndGet() }
                sleep(1500.milliseconds)
                step("after") { "woke" }
            }
            stentWorker(stent) { register(wf); unloadThreshold = 200.milliseconds; pollInterval = 100.milliseconds }.use { worker ->
                val run = stent.client.start(wf, "x", id = "sleepy")
                eventually("the run is WAITING") { stent.statusOf("sleepy") == RunStatus.WAITING }
                val waiting = run.describe()
                waiting.leaseOwner shouldBe null
                waiting.readyAt shouldBe waiting.records.single { it.kind == RecordKind.SLEEP }.wakeAt
                worker.activeRuns shouldBe 0
                run.await(10.seconds) shouldBe "woke"
                before.get() shouldBe 1
            }
        }
    }

    test("signals: kept when sent before the wait, delivered after the wait, one per wait in order") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("signals") { _ ->
                val a = awaitSignal<String>("s")
                val b = awaitSignal<String>("s")
                val c = awaitSignal<String>("s")
                "$a,$b,$c"
            }
            val run = stent.client.start(wf, "", id = "sig")
            stent.client.signal("sig", "s", "one") // before any worker or wait exists
            stent.client.signal("sig", "s", "two")
            stentWorker(stent) { register(wf); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                eventually("the run waits for the third signal") {
                    val info = stent.client.describe("sig")
                    info.status == RunStatus.WAITING && info.records.count { it.status == RecordStatus.COMPLETED } == 2
                }
                stent.client.signal("sig", "s", "three")
                run.await(10.seconds) shouldBe "one,two,three"
            }
        }
    }

    test("a signal wait times out with SignalTimeoutException, and replay sees the same timeout") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("timeout") { _ ->
                val r = try {
                    awaitSignal<String>("never", timeout = 300.milliseconds)
                } catch (e: SignalTimeoutException) {
                    "timed out: ${e.signalName}"
                }
                sleep(1.seconds) // unload and replay past the timeout
                r
            }
            stentWorker(stent) { register(wf); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                stent.client.start(wf, "", id = "t").await(10.seconds) shouldBe "timed out: never"
                stent.client.describe("t").records.first().status shouldBe RecordStatus.TIMED_OUT
            }
        }
    }

    test("a signal to an unknown or finished run is a clear error") {
        withStore(store) { stent ->
            shouldThrow<UnknownRunException> { stent.client.signal("ghost", "s", "x") }
                .message shouldContain "no run with id 'ghost'"
            val wf = workflow<String, String>("quick") { it }
            stentWorker(stent) { register(wf) }.use { stent.client.start(wf, "done", id = "q").await(10.seconds) }
            shouldThrow<UnknownRunException> { stent.client.signal("q", "s", "x") }.message shouldContain "has finished (COMPLETED)"
        }
    }

    test("retries with back-off record each attempt, wait out each delay, and succeed") {
        withStore(store) { stent ->
            val attempts = AtomicInteger()
            val at = java.util.Collections.synchronizedList(mutableListOf<Long>())
            val policy = retryPolicy { maxAttempts = 4; initialDelay = 200.milliseconds; backoffFactor = 2.0; jitter = 0.0 }
            val wf = workflow<String, Int>("flaky", { retryPolicy = policy }) { _ ->
                step("call") {
                    at += System.nanoTime()
                    if (attempts.incrementAndGet() < 3) throw IOException("down #$attempt")
                    attempt
                }
            }
            stentWorker(stent) { register(wf) }.use {
                stent.client.start(wf, "", id = "f").await(10.seconds) shouldBe 3
                stent.client.describe("f").records.single().attempts shouldBe 3
            }
            // the gaps are the policy's delays (200 ms, then 400 ms), never shorter
            val gapsMs = at.zipWithNext { a, b -> (b - a) / 1_000_000 }
            gapsMs.size shouldBe 2
            gapsMs[0] shouldBeGreaterThanOrEqual 195L
            gapsMs[1] shouldBeGreaterThanOrEqual 395L
        }
    }

    test("a long retry back-off unloads the run and the attempt count survives the unload") {
        withStore(store) { stent ->
            val attempts = AtomicInteger()
            val policy = retryPolicy { maxAttempts = 3; initialDelay = 1.seconds; jitter = 0.0 }
            val wf = workflow<String, Int>("slow-retry") { _ ->
                step("call", policy) { if (attempts.incrementAndGet() < 2) throw IOException("once") else attempt }
            }
            stentWorker(stent) { register(wf); unloadThreshold = 200.milliseconds; pollInterval = 50.milliseconds }.use {
                val run = stent.client.start(wf, "", id = "sr")
                eventually("the run waits for its retry") {
                    val info = run.describe()
                    info.status == RunStatus.WAITING && info.records.singleOrNull()?.status == RecordStatus.RETRYING
                }
                run.await(10.seconds) shouldBe 2
            }
        }
    }

    test("a non-retryable exception fails the step at once; exhausted retries fail the run with the cause chain") {
        withStore(store) { stent ->
            val calls = ConcurrentHashMap<String, AtomicInteger>()
            val wf = workflow<String, String>("failing", { retryPolicy = retryPolicy { maxAttempts = 3; initialDelay = 10.milliseconds } }) { mode ->
                step("s") {
                    calls.computeIfAbsent(mode) { AtomicInteger() }.incrementAndGet()
                    if (mode == "fatal") throw NonRetryableException("card declined")
                    throw IllegalStateException("gateway broken", IOException("socket closed"))
                }
            }
            stentWorker(stent) { register(wf) }.use {
                val fatal = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "fatal", id = "nr").await(10.seconds) }
                calls["fatal"]!!.get() shouldBe 1
                fatal.failure.type shouldBe StepFailedException::class.java.name
                fatal.failure.cause!!.type shouldBe NonRetryableException::class.java.name

                val exhausted = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "flaky", id = "ex").await(10.seconds) }
                calls["flaky"]!!.get() shouldBe 3
                exhausted.message shouldContain "failed after 3 attempt(s)"
                val cause = exhausted.failure.cause!!
                cause.type shouldBe "java.lang.IllegalStateException"
                cause.message shouldBe "gateway broken"
                cause.cause!!.type shouldBe "java.io.IOException"
                cause.cause!!.message shouldBe "socket closed"
                cause.stackTrace shouldContain "WorkflowBehaviourSuite"
                stent.client.describe("ex").records.single().status shouldBe RecordStatus.FAILED
            }
        }
    }

    test("a run of an unknown workflow stays PENDING while the worker serves others, and describe() says why") {
        withStore(store) { stent ->
            val known = workflow<String, String>("known") { it }
            stent.client.startByName<String, String>("nobody-registers-this", "x", id = "orphan")
            stentWorker(stent) { register(known); queues = setOf("default"); pollInterval = 50.milliseconds }.use {
                // started after the orphan: the worker claimed past it, in the same claims
                stent.client.start(known, "served", id = "k").await(10.seconds) shouldBe "served"
                val orphan = stent.client.describe("orphan")
                orphan.status shouldBe RunStatus.PENDING
                orphan.claimCount shouldBe 0
                orphan.diagnosis!! shouldContain "no worker has registered workflow 'nobody-registers-this' for queue 'default'"
                stent.client.describe("k").diagnosis shouldBe null
                // served, but in another queue only
                stent.client.start(known, "elsewhere", id = "q", queue = "other-queue").describe().diagnosis!! shouldContain
                    "no worker has registered workflow 'known' for queue 'other-queue'"
            }
            // a worker that served it has stopped: describe() says since when
            stent.client.start(known, "later", id = "later").describe().diagnosis!! shouldContain
                "no worker has registered workflow 'known' for queue 'default' since"
        }
    }

    test("an undecodable stored input fails only that run, with a clear error") {
        withStore(store) { stent ->
            val wf = workflow<Order, Long>("typed") { o -> step("amount") { o.amount } }
            stentWorker(stent) { register(wf) }.use {
                val bad = stent.client.startByName<String, Long>("typed", "not an order", id = "bad")
                val good = stent.client.start(wf, Order("g", 7), id = "good")
                val e = shouldThrow<WorkflowFailedException> { bad.await(10.seconds) }
                e.failure.type shouldBe PayloadException::class.java.name
                e.failure.message!! shouldContain "cannot decode the stored input of workflow 'typed' (run 'bad')"
                good.await(10.seconds) shouldBe 7L
            }
        }
    }

    test("a step result that cannot be encoded fails the step with a message naming it") {
        withStore(store) { stent ->
            val wf = workflow<String, Double>("nan") { _ -> step("ratio") { Double.NaN } }
            stentWorker(stent) { register(wf) }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "", id = "nan").await(10.seconds) }
                e.message shouldContain "step 'ratio'"
                e.failure.cause!!.type shouldBe PayloadException::class.java.name
                e.failure.cause!!.message!! shouldContain "cannot encode the result of step 'ratio' of workflow 'nan' (run 'nan')"
            }
        }
    }

    test("an oversized input is refused at start and nothing is stored") {
        withStore(store, StentOptions(maxPayloadBytes = 64)) { stent ->
            val wf = workflow<String, String>("big") { it }
            val e = shouldThrow<PayloadException> { stent.client.start(wf, "x".repeat(100), id = "big") }
            e.problem shouldBe PayloadProblem.TOO_LARGE
            e.message shouldContain "102 bytes encoded, over the limit of 64 bytes"
            shouldThrow<UnknownRunException> { stent.client.describe("big") }
        }
    }

    test("a duplicate step id fails the run at the second call, even if the code catches it") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("dup") { _ ->
                step("charge") { 1 }
                try {
                    step("charge") { 2 }
                } catch (e: DuplicateStepIdException) {
                    // swallowing it does not save the run
                }
                "done"
            }
            stentWorker(stent) { register(wf) }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "", id = "d").await(10.seconds) }
                e.failure.type shouldBe DuplicateStepIdException::class.java.name
                e.failure.message shouldBe
                    "duplicate step id 'charge' in workflow 'dup' (run 'd'): step ids must be unique within a run; in a loop give each iteration its own id, such as 'charge-1', 'charge-2'"
            }
        }
    }

    test("a non-deterministic change is caught on replay and fails the run naming the step") {
        val db = store.newDb()
        val v1 = workflow<String, String>("evolving") { _ ->
            step("reserve") { "r" }
            awaitSignal<String>("go")
        }
        val v2 = workflow<String, String>("evolving") { _ ->
            // v2 dropped the "reserve" step
            awaitSignal<String>("go")
        }
        db.open().use { stent ->
            stentWorker(stent) { register(v1); unloadThreshold = 100.milliseconds }.use {
                stent.client.start(v1, "", id = "nd")
                eventually("v1 waits for the signal") { stent.statusOf("nd") == RunStatus.WAITING }
            }
            stentWorker(stent) { register(v2) }.use {
                stent.client.signal("nd", "go", "now")
                val e = shouldThrow<WorkflowFailedException> { stent.client.handle("nd", dev.stent.codecOf<String>()).await(10.seconds) }
                e.failure.type shouldBe dev.stent.NonDeterminismException::class.java.name
                e.failure.message!! shouldContain "non-deterministic replay of workflow 'evolving' (run 'nd') at step 'reserve'"
                e.failure.message!! shouldContain "finished without reaching it"
            }
        }
    }

    test("parallel branches run concurrently and replay without re-running finished steps") {
        withStore(store) { stent ->
            val running = AtomicInteger()
            val maxRunning = AtomicInteger()
            val executions = AtomicInteger()
            val wf = workflow<Int, Int>("fanout") { n ->
                val parts = coroutineScope {
                    (1..n).map { i ->
                        async {
                            step("part-$i") {
                                executions.incrementAndGet()
                                val now = running.incrementAndGet()
                                maxRunning.accumulateAndGet(now) { a, b -> maxOf(a, b) }
                                delay(200.milliseconds)
                                running.decrementAndGet()
                                i
                            }
                        }
                    }.awaitAll()
                }
                sleep(800.milliseconds, id = "pause") // unload, then replay the branches from the records
                parts.sum()
            }
            stentWorker(stent) { register(wf); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                val run = stent.client.start(wf, 5, id = "fan")
                eventually("the run unloads") { stent.statusOf("fan") == RunStatus.WAITING }
                run.await(10.seconds) shouldBe 15
                executions.get() shouldBe 5
                maxRunning.get() shouldBeGreaterThan 1
            }
        }
    }

    test("60 branches of a blocking step overlap their bodies, up to maxParallelStepsPerRun") {
        withStore(store) { stent ->
            val running = AtomicInteger()
            val peak = AtomicInteger()
            val wf = workflow<Int, Int>("blocking-fanout") { n ->
                coroutineScope {
                    (1..n).map { i ->
                        async {
                            step("io-$i") {
                                peak.accumulateAndGet(running.incrementAndGet()) { a, b -> maxOf(a, b) }
                                Thread.sleep(150) // a blocking call (JDBC, a blocking HTTP client)
                                running.decrementAndGet()
                                i
                            }
                        }
                    }.awaitAll().sum()
                }
            }
            stentWorker(stent) { register(wf) }.use {
                stent.client.start(wf, 60, id = "blocking").await(30.seconds) shouldBe 1830
                peak.get() shouldBeGreaterThan 20 // with one serial thread per run it was 1
            }
            peak.set(0)
            stentWorker(stent) { register(wf); maxParallelStepsPerRun = 4 }.use {
                stent.client.start(wf, 12, id = "bounded").await(30.seconds) shouldBe 78
                peak.get() shouldBe 4
            }
        }
    }

    test("a wait holds no slot: 200 runs sleeping 3 s on concurrency 4 sleep together, and read as WAITING meanwhile") {
        withStore(store) { stent ->
            val asleep = AtomicInteger()
            val peak = AtomicInteger()
            val wf = workflow<Int, Int>("nap") { i ->
                step("before") { peak.accumulateAndGet(asleep.incrementAndGet()) { a, b -> maxOf(a, b) } }
                sleep(3.seconds) // under the unload threshold: the run waits in memory
                step("after") { asleep.decrementAndGet() }
                i
            }
            stentWorker(stent) { register(wf); concurrency = 4 }.use { worker ->
                val runs = (1..200).map { stent.client.start(wf, it, id = "nap-$it") }
                eventually("a sleeping run reads WAITING, until when it sleeps") { stent.client.describe("nap-1").status == RunStatus.WAITING }
                val sleeping = stent.client.describe("nap-1")
                sleeping.readyAt shouldNotBe null
                sleeping.leaseOwner shouldBe worker.id // still loaded: parked in memory, not unloaded
                runs.forEach { it.await(60.seconds) }
                peak.get() shouldBeGreaterThan 100 // were a wait to hold its slot, at most 4 runs would sleep at once
                stent.client.describe("nap-1").status shouldBe RunStatus.COMPLETED
                stent.client.list(status = RunStatus.WAITING).shouldBeEmpty()
            }
        }
    }

    test("past maxWaitingInMemory, the run waiting longest unloads, and every run still finishes") {
        withStore(store) { stent ->
            val wf = workflow<Int, Int>("nap-bounded") { i ->
                sleep(2.seconds)
                step("after") { i }
            }
            stentWorker(stent) { register(wf); concurrency = 4; maxWaitingInMemory = 2; pollInterval = 50.milliseconds }.use {
                val runs = (1..10).map { stent.client.start(wf, it, id = "bounded-$it") }
                eventually("runs past the bound unload") {
                    stent.client.list(status = RunStatus.WAITING).count { it.leaseOwner == null } >= 5
                }
                runs.sumOf { it.await(60.seconds) } shouldBe 55
            }
        }
    }

    test("a child is a run of its own: its output comes back, describe shows parent and children, a replay starts no second child") {
        withStore(store) { stent ->
            val childRuns = AtomicInteger()
            val double = workflow<Int, Int>("double") { n ->
                sleep(300.milliseconds) // the parent unloads meanwhile
                step("double") { childRuns.incrementAndGet(); n * 2 }
            }
            val parent = workflow<Int, Int>("parent") { n ->
                val first = child(double, n, id = "first")
                val second = startChild(double, first) // a generated id
                sleep(300.milliseconds, id = "pause") // unload and replay: both children are found, not started again
                second.await() + 1
            }
            stentWorker(stent) { register(parent); register(double); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                stent.client.start(parent, 5, id = "p").await(30.seconds) shouldBe 21
            }
            childRuns.get() shouldBe 2
            val info = stent.client.describe("p")
            info.children shouldContainExactly listOf("p/first", "p/child:double#1")
            info.records.filter { it.kind == RecordKind.CHILD }.map { it.status } shouldContainExactly listOf(RecordStatus.COMPLETED, RecordStatus.COMPLETED)
            stent.client.describe("p/first").parentId shouldBe "p"
            stent.client.list(parentId = "p").map { it.id }.toSet() shouldBe setOf("p/first", "p/child:double#1")
        }
    }

    test("a failed child fails its parent with the child's message, and the parent may catch it") {
        withStore(store) { stent ->
            val broken = workflow<String, String>("broken") { why -> step<String>("fail", retryPolicy { maxAttempts = 1 }) { throw IOException("disk $why") } }
            val strict = workflow<String, String>("strict") { why -> child(broken, why, id = "b") }
            val lenient = workflow<String, String>("lenient") { why ->
                try {
                    child(broken, why, id = "b")
                } catch (e: ChildFailedException) {
                    "caught ${e.childStatus} from ${e.childRunId}: ${e.failure.message}"
                }
            }
            stentWorker(stent) { register(broken); register(strict); register(lenient) }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(strict, "full", id = "s").await(30.seconds) }
                e.failure.type shouldBe ChildFailedException::class.java.name
                e.failure.message!! shouldContain "child run 's/b'"
                e.failure.message!! shouldContain "disk full"
                stent.client.start(lenient, "gone", id = "l").await(30.seconds) shouldContain "caught FAILED from l/b"
            }
        }
    }

    test("cancel goes down a 3-level tree of children; a detached child outlives it") {
        withStore(store) { stent ->
            val leaf = workflow<String, String>("leaf") { _ -> awaitSignal<String>("never") }
            val mid = workflow<String, String>("mid") { _ -> child(leaf, "x", id = "leaf") }
            val top = workflow<String, String>("top") { _ ->
                startChild(leaf, "y", id = "free", detached = true)
                child(mid, "x", id = "mid")
            }
            stentWorker(stent) { register(top); register(mid); register(leaf); unloadThreshold = 100.milliseconds }.use {
                stent.client.start(top, "go", id = "t")
                eventually("the whole tree waits") {
                    listOf("t", "t/mid", "t/mid/leaf", "t/free").all { runCatching { stent.client.describe(it).status }.getOrNull() == RunStatus.WAITING }
                }
                stent.client.cancel("t")
                eventually("cancel reached every attached level") {
                    listOf("t", "t/mid", "t/mid/leaf").all { stent.client.describe(it).status == RunStatus.CANCELLED }
                }
                stent.client.describe("t/free").status shouldBe RunStatus.WAITING
            }
        }
    }

    test("map fans 60 inputs out as children and returns their outputs in input order, each child run once") {
        withStore(store) { stent ->
            val runs = ConcurrentHashMap<Int, AtomicInteger>()
            val square = workflow<Int, Int>("square") { n -> step("square") { runs.computeIfAbsent(n) { AtomicInteger() }.incrementAndGet(); n * n } }
            val squares = workflow<Int, List<Int>>("squares") { n -> map(square, (0 until n).toList(), id = "sq") }
            stentWorker(stent) { register(square); register(squares); concurrency = 8; unloadThreshold = 100.milliseconds }.use {
                stent.client.start(squares, 60, id = "m").await(60.seconds) shouldBe (0 until 60).map { it * it }
            }
            runs.keys shouldBe (0 until 60).toSet()
            runs.values.map { it.get() }.toSet() shouldBe setOf(1)
            stent.client.list(parentId = "m", limit = 1000).size shouldBe 60
        }
    }

    test("a map whose child fails fails its parent with that child, and the children left running are cancelled") {
        withStore(store) { stent ->
            val picky = workflow<Int, Int>("picky") { n ->
                if (n == 3) step<Int>("refuse", retryPolicy { maxAttempts = 1 }) { throw IllegalStateException("no $n") }
                awaitSignal<String>("go", timeout = if (n < 3) null else 30.seconds)
                n
            }
            val all = workflow<Int, List<Int>>("all-picky") { n -> map(picky, (0 until n).toList(), id = "p") }
            stentWorker(stent) { register(picky); register(all); unloadThreshold = 100.milliseconds }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(all, 6, id = "mp").await(30.seconds) }
                e.failure.message!! shouldContain "child run 'mp/p/3'"
                eventually("the other children are cancelled") {
                    (0 until 6).filter { it != 3 }.all { stent.client.describe("mp/p/$it").status == RunStatus.CANCELLED }
                }
            }
        }
    }

    test("events: a client awaits each published version in order, a replay publishes nothing again, a finished run ends the wait") {
        withStore(store) { stent ->
            val job = workflow<Int, String>("job") { n ->
                for (i in 1..n) {
                    setEvent("progress", i * 10)
                    awaitSignal<String>("next") // unloads: the replay reaches each published event again
                }
                setEvent("status", "done")
                "finished"
            }
            stentWorker(stent) { register(job); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                val run = stent.client.start(job, 3, id = "e")
                val seen = mutableListOf<Int>()
                var version = 0L
                repeat(3) {
                    val event = stent.client.awaitEvent<Int>("e", "progress", afterVersion = version, timeout = 30.seconds)!!
                    seen += event.value
                    version = event.version
                    stent.client.signal("e", "next", "go")
                }
                seen shouldContainExactly listOf(10, 20, 30)
                run.await(30.seconds) shouldBe "finished"
                stent.client.getEvent<Int>("e", "progress")!!.version shouldBe 3 // each version once, although the run replayed three times
                stent.client.getEvent<String>("e", "status")!!.value shouldBe "done"
                stent.client.awaitEvent<Int>("e", "progress", afterVersion = 3, timeout = 5.seconds) shouldBe null // finished without a fourth
                stent.client.getEvent<Int>("e", "never") shouldBe null
                val waiting = stent.client.start(job, 1, id = "e2")
                shouldThrow<AwaitTimeoutException> { stent.client.awaitEvent<Int>(waiting.id, "status", timeout = 300.milliseconds) }
            }
        }
    }

    test("a step that starts another run with an id from its idempotency key starts it once, though its body runs again") {
        withStore(store) { stent ->
            val attempts = AtomicInteger()
            val notify = workflow<String, String>("notify-once") { to -> step("send") { "sent to $to" } }
            val caller = workflow<String, String>("caller") { to ->
                step("start-notify", retryPolicy { maxAttempts = 3; initialDelay = 10.milliseconds }) {
                    val started = stent.client.start(notify, to, id = "$idempotencyKey/notify")
                    if (attempts.incrementAndGet() < 3) throw IOException("lost the reply") // the start happened; the body fails after it
                    started.id
                }
            }
            stentWorker(stent) { register(notify); register(caller) }.use {
                val notifyId = stent.client.start(caller, "ana", id = "call").await(30.seconds)
                notifyId shouldBe "call/start-notify/notify"
                stent.client.handle(notifyId, notify.outputCodec).await(30.seconds) shouldBe "sent to ana"
            }
            attempts.get() shouldBe 3
            stent.client.list(workflowName = "notify-once").map { it.id } shouldContainExactly listOf("call/start-notify/notify")
        }
    }

    test("now, randomUuid and random are recorded and the same after a replay") {
        withStore(store) { stent ->
            val firstSeen = ConcurrentHashMap<String, String>()
            val wf = workflow<String, String>("recorded") { _ ->
                val values = "${now()}|${randomUuid()}|${random()}"
                firstSeen.putIfAbsent("v", values)
                sleep(800.milliseconds)
                values
            }
            stentWorker(stent) { register(wf); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                val run = stent.client.start(wf, "", id = "rec")
                eventually("the run unloads") { stent.statusOf("rec") == RunStatus.WAITING }
                run.await(10.seconds) shouldBe firstSeen["v"]
                run.describe().records.map { it.kind }.toSet() shouldBe setOf(RecordKind.NOW, RecordKind.UUID, RecordKind.RANDOM, RecordKind.SLEEP)
            }
        }
    }

    test("cancel: a WAITING run is cancelled at once, a running one in the middle of its step") {
        withStore(store) { stent ->
            val waiting = workflow<String, String>("waits") { _ -> awaitSignal<String>("never") }
            val after = AtomicInteger()
            val busy = workflow<String, String>("busy") { _ ->
                // short enough to finish within the test if the cancel did not reach it
                step("long") { delay(1.seconds) }
                step("after") { after.incrementAndGet() }
                "finished"
            }
            stentWorker(stent) { register(waiting); register(busy); unloadThreshold = 100.milliseconds }.use {
                val w = stent.client.start(waiting, "", id = "w")
                eventually("it waits") { stent.statusOf("w") == RunStatus.WAITING }
                w.cancel() shouldBe RunStatus.CANCELLED
                shouldThrow<WorkflowCancelledException> { w.await(5.seconds) }

                val b = stent.client.start(busy, "", id = "b")
                eventually("it runs") { stent.statusOf("b") == RunStatus.RUNNING }
                b.cancel() shouldBe RunStatus.RUNNING
                shouldThrow<WorkflowCancelledException> { b.await(10.seconds) }
                delay(1500.milliseconds) // past the moment the step would have ended
                after.get() shouldBe 0
                b.describe().records.shouldBeEmpty()
            }
        }
    }

    test("a step longer than the lease runs once with two workers: the heartbeat keeps the lease") {
        withStore(store) { stent ->
            val runs = AtomicInteger()
            val wf = workflow<String, String>("long-step") { _ -> step("slow") { runs.incrementAndGet(); delay(3.seconds); "done" } }
            val workers = List(2) { stentWorker(stent) { register(wf); leaseDuration = 1.seconds; pollInterval = 50.milliseconds } }
            try {
                stent.client.start(wf, "", id = "ls").await(20.seconds) shouldBe "done"
            } finally {
                workers.forEach { it.close() }
            }
            runs.get() shouldBe 1
            stent.client.describe("ls").claimCount shouldBe 1 // finished on its first claim: no other worker took it over
        }
    }

    test("await gives up after its timeout while the run goes on, and a later await gets the output") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("gated") { _ -> awaitSignal<String>("go") }
            stentWorker(stent) { register(wf) }.use {
                val run = stent.client.start(wf, "", id = "g")
                shouldThrow<dev.stent.AwaitTimeoutException> { run.await(200.milliseconds) }.message shouldContain "it is still going"
                stent.client.signal("g", "go", "went")
                run.await(10.seconds) shouldBe "went"
            }
        }
    }

    test("a delayed start is not claimed before its delay") {
        withStore(store) { stent ->
            val startedAt = java.util.concurrent.atomic.AtomicLong()
            val wf = workflow<String, String>("delayed") { _ -> step("s") { startedAt.set(System.currentTimeMillis()); "ran" } }
            stentWorker(stent) { register(wf); pollInterval = 50.milliseconds }.use {
                val run = stent.client.start(wf, "", id = "dl", delay = 1.seconds)
                val pending = run.describe()
                pending.status shouldBe RunStatus.PENDING
                val readyAt = pending.readyAt!!.toEpochMilli()
                (readyAt - pending.createdAt.toEpochMilli()) shouldBe 1_000L
                run.await(10.seconds) shouldBe "ran"
                // the database clock and this JVM's clock are the same machine's: allow a few ms of rounding
                startedAt.get() shouldBeGreaterThanOrEqual readyAt - 5
            }
        }
    }

    test("one failing branch of a fan-out fails the run; branches that finished keep their records, the others are cancelled") {
        withStore(store) { stent ->
            val cancelled = AtomicInteger()
            val wf = workflow<String, String>("fan-fail") { _ ->
                coroutineScope {
                    val ok = async { step("ok") { "fine" } }
                    val slow = async {
                        step("slow") {
                            try {
                                delay(60.seconds)
                            } catch (e: kotlinx.coroutines.CancellationException) {
                                cancelled.incrementAndGet()
                                throw e
                            }
                            "late"
                        }
                    }
                    val bad = async { ok.await(); step<String>("bad", retryPolicy { maxAttempts = 1 }) { throw IOException("branch broke") } }
                    "${ok.await()} ${slow.await()} ${bad.await()}"
                }
            }
            stentWorker(stent) { register(wf) }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(wf, "", id = "ff").await(10.seconds) }
                e.failure.type shouldBe StepFailedException::class.java.name
                e.failure.message!! shouldContain "step 'bad'"
                cancelled.get() shouldBe 1
                stent.client.describe("ff").records.associate { it.id to it.status } shouldBe
                    mapOf("ok" to RecordStatus.COMPLETED, "bad" to RecordStatus.FAILED)
            }
        }
    }

    test("two signal names in one run: each wait takes only its own name, whatever the order they arrive in") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("two-names") { _ ->
                val a = awaitSignal<String>("a")
                val b = awaitSignal<String>("b")
                val a2 = awaitSignal<String>("a")
                "$a $b $a2"
            }
            stentWorker(stent) { register(wf); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                val run = stent.client.start(wf, "", id = "tn")
                stent.client.signal("tn", "b", "b1") // before the run waits for b
                stent.client.signal("tn", "a", "a1")
                eventually("it waits for the second a") {
                    val info = stent.client.describe("tn")
                    info.status == RunStatus.WAITING && info.records.count { it.status == RecordStatus.COMPLETED } == 2
                }
                stent.client.signal("tn", "a", "a2")
                run.await(10.seconds) shouldBe "a1 b1 a2"
            }
        }
    }
})

class SqliteWorkflowBehaviourSpec : WorkflowBehaviourSuite(TestStore.Sqlite)

class PostgresWorkflowBehaviourSpec : WorkflowBehaviourSuite(TestStore.Postgres)
