package dev.stent.it

import dev.stent.AwaitTimeoutException
import dev.stent.InvalidArgumentException
import dev.stent.PayloadException
import dev.stent.PayloadProblem
import dev.stent.RecordKind
import dev.stent.RecordStatus
import dev.stent.RunStatus
import dev.stent.SignalTimeoutException
import dev.stent.StentException
import dev.stent.StentOptions
import dev.stent.TimeMath
import dev.stent.UnknownRunException
import dev.stent.WorkflowCancelledException
import dev.stent.WorkflowFailedException
import dev.stent.awaitSignal
import dev.stent.codecOf
import dev.stent.retryPolicy
import dev.stent.signal
import dev.stent.startByName
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.assertions.withClue
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.longs.shouldBeGreaterThanOrEqual
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.delay
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonPrimitive
import java.time.Instant
import kotlin.time.Duration
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Inputs at their extremes (names, ids, sizes, durations, instants): a clear typed error or a documented saturation, never a spin. */
@OptIn(dev.stent.InternalStentApi::class)
abstract class ExtremesSuite(store: TestStore) : FunSpec({

    test("infinite and overflowing waits set no timer or a saturated one, and nothing spins") {
        withStore(store) { stent ->
            val forever = workflow<String, String>("forever") { _ -> sleep(Duration.INFINITE, id = "nap"); "woke" }
            val maxInstant = workflow<String, String>("until-max") { _ -> sleepUntil(Instant.MAX, id = "nap"); "woke" }
            val noTimeout = workflow<String, String>("no-timeout") { _ -> awaitSignal<String>("go", timeout = Duration.INFINITE) }
            // finite, but 10,000 years: saturates at 1,000 (Long.MAX_VALUE.milliseconds would be INFINITE already)
            val huge = workflow<String, String>("huge") { _ -> sleep(3_650_000.days, id = "nap"); "woke" }
            stentWorker(stent) {
                register(forever); register(maxInstant); register(noTimeout); register(huge)
                unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds
            }.use {
                for (id in listOf("f", "m", "n", "h")) {
                    stent.client.startByName<String, String>(
                        mapOf("f" to "forever", "m" to "until-max", "n" to "no-timeout", "h" to "huge").getValue(id), "", id = id,
                    )
                }
                eventually("all four are unloaded") { listOf("f", "m", "n", "h").all { stent.statusOf(it) == RunStatus.WAITING } }
                val before = listOf("f", "m", "n", "h").associateWith { stent.client.describe(it) }
                before.getValue("f").readyAt shouldBe null
                before.getValue("f").records.single().wakeAt shouldBe null
                before.getValue("n").readyAt shouldBe null
                before.getValue("m").readyAt shouldBe Instant.ofEpochMilli(TimeMath.MAX_EPOCH_MS)
                val h = before.getValue("h")
                h.readyAt!!.toEpochMilli() shouldBeGreaterThanOrEqual h.createdAt.toEpochMilli() + TimeMath.MAX_DELAY_MS - 1
                delay(1.seconds)
                // a hot loop would claim and unload them again and again: nothing moved
                for ((id, info) in before) {
                    val now = stent.client.describe(id)
                    withClue(id) { now.updatedAt shouldBe info.updatedAt; now.status shouldBe RunStatus.WAITING }
                }
                stent.client.signal("n", "go", "now")
                stent.client.await("n", codecOf<String>(), 10.seconds) shouldBe "now"
                stent.client.cancel("f") shouldBe RunStatus.CANCELLED
                shouldThrow<WorkflowCancelledException> { stent.client.await("f", codecOf<String>(), 10.seconds) }
            }
        }
    }

    test("zero waits: sleep(0) returns, a zero signal timeout takes a stored signal or times out at once, await(0) looks once") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("zeros") { _ ->
                sleep(Duration.ZERO)
                val first = awaitSignal<String>("s", timeout = Duration.ZERO)
                val second = try {
                    awaitSignal<String>("s", timeout = Duration.ZERO)
                } catch (e: SignalTimeoutException) {
                    "timed out"
                }
                "$first/$second"
            }
            val run = stent.client.start(wf, "", id = "z")
            stent.client.signal("z", "s", "stored")
            shouldThrow<AwaitTimeoutException> { run.await(Duration.ZERO) }
            stentWorker(stent) { register(wf) }.use {
                run.await(10.seconds) shouldBe "stored/timed out"
                run.await(Duration.ZERO) shouldBe "stored/timed out"
            }
        }
    }

    test("a start delay beyond 1,000 years (or infinite) saturates; a negative one is refused") {
        withStore(store) { stent ->
            val wf = workflow<String, String>("later") { it }
            val run = stent.client.start(wf, "", id = "inf", delay = Duration.INFINITE)
            val info = run.describe()
            info.status shouldBe RunStatus.PENDING
            info.readyAt!!.toEpochMilli() shouldBeGreaterThanOrEqual info.createdAt.toEpochMilli() + TimeMath.MAX_DELAY_MS - 1
            val max = stent.client.start(wf, "", id = "max", delay = 3_650_000.days).describe()
            max.readyAt!!.toEpochMilli() shouldBeGreaterThanOrEqual max.createdAt.toEpochMilli() + TimeMath.MAX_DELAY_MS - 1
            shouldThrow<InvalidArgumentException> { stent.client.start(wf, "", id = "neg", delay = (-1).seconds) }.message shouldContain
                "delay must not be negative"
            shouldThrow<UnknownRunException> { stent.client.describe("neg") }
            stent.client.start(wf, "", id = "past", deadline = Instant.MIN).describe().deadline shouldBe Instant.EPOCH
        }
    }

    test("a retry policy with no cap retries at its saturated delay, not at once") {
        withStore(store) { stent ->
            val attempts = java.util.concurrent.atomic.AtomicInteger()
            val policy = retryPolicy { initialDelay = 2.days; maxDelay = Duration.INFINITE; backoffFactor = 1e300; jitter = 0.0 }
            val wf = workflow<String, String>("patient") { _ -> step("call", policy) { attempts.incrementAndGet(); error("down") } }
            stentWorker(stent) { register(wf); unloadThreshold = 100.milliseconds; pollInterval = 50.milliseconds }.use {
                stent.client.start(wf, "", id = "p")
                eventually("the run waits for its retry") { stent.statusOf("p") == RunStatus.WAITING }
                delay(500.milliseconds)
                attempts.get() shouldBe 1
                val step = stent.client.describe("p").records.single()
                step.status shouldBe RecordStatus.RETRYING
                step.wakeAt!!.toEpochMilli() shouldBeGreaterThanOrEqual step.updatedAt.toEpochMilli() + 2.days.inWholeMilliseconds - 1_000
            }
        }
    }

    test("bad names, ids, sizes and durations: each a typed error naming what is wrong and how to fix it, and nothing stored") {
        withStore(store, StentOptions(maxPayloadBytes = 1_000)) { stent ->
            val wf = workflow<String, String>("v") { it }
            val long = "x".repeat(201)
            // (what the caller did, the call, the text the message must contain)
            val cases = listOf<Triple<String, suspend () -> Unit, String>>(
                Triple("blank run id", { stent.client.start(wf, "", id = " ") }, "invalid run id ' ': it is blank"),
                Triple("long run id", { stent.client.start(wf, "", id = long) }, "201 characters long"),
                Triple("NUL in run id", { stent.client.start(wf, "", id = "a\u0000b") }, "control character (code 0)"),
                Triple("padded queue", { stent.client.start(wf, "", id = "q", queue = " q") }, "invalid queue ' q'"),
                Triple("blank workflow name", { stent.client.startByName<String, String>("", "") }, "invalid workflow name"),
                Triple("signal name with a newline", { stent.client.signal("any", "a\nb", "x") }, "invalid signal name"),
                Triple("negative delay", { stent.client.start(wf, "", id = "d", delay = (-1).milliseconds) }, "delay must not be negative"),
                Triple("negative await timeout", { stent.client.await("any", codecOf<String>(), (-1).seconds) }, "timeout must not be negative"),
                Triple("list limit 0", { stent.client.list(limit = 0) }, "limit must be within 1..10000"),
                Triple("negative offset", { stent.client.list(offset = -1) }, "offset must not be negative"),
                Triple("oversized input", { stent.client.start(wf, "x".repeat(2_000), id = "big") }, "over the limit of 1000 bytes"),
                Triple("oversized signal", { stent.client.signal("any", "s", "x".repeat(2_000)) }, "over the limit of 1000 bytes"),
            )
            for ((what, call, text) in cases) {
                val e = withClue(what) { shouldThrow<StentException> { call() } }
                withClue(what) { e.message!! shouldContain text }
            }
            stent.client.list().shouldBeEmpty()
            val worker = listOf<Pair<String, () -> Unit>>(
                "concurrency 0" to { stentWorker(stent) { register(wf); concurrency = 0 } },
                "lease 0" to { stentWorker(stent) { register(wf); leaseDuration = Duration.ZERO } },
                "lease infinite" to { stentWorker(stent) { register(wf); leaseDuration = Duration.INFINITE } },
                "heartbeat longer than lease" to { stentWorker(stent) { register(wf); heartbeatInterval = 1.days } },
                "poll infinite" to { stentWorker(stent) { register(wf); pollInterval = Duration.INFINITE } },
                "grace infinite" to { stentWorker(stent) { register(wf); shutdownGrace = Duration.INFINITE } },
                "stop timeout 0" to { stentWorker(stent) { register(wf); stopTimeout = Duration.ZERO } },
                "worker id too long" to { stentWorker(stent) { register(wf); workerId = long } },
                "parallel steps 0" to { stentWorker(stent) { register(wf); maxParallelSteps = 0 } },
                "parallel steps Int.MAX_VALUE" to { stentWorker(stent) { register(wf); maxParallelSteps = Int.MAX_VALUE } },
                "parallel steps per run above the worker's" to { stentWorker(stent) { register(wf); maxParallelSteps = 8; maxParallelStepsPerRun = 9 } },
                "parallel steps per run negative" to { stentWorker(stent) { register(wf); maxParallelStepsPerRun = -1 } },
            )
            for ((what, start) in worker) withClue(what) { shouldThrow<InvalidArgumentException> { start() } }
        }
    }

    test("bad calls inside a workflow fail the run with a typed error naming the run and the step") {
        withStore(store) { stent ->
            val negative = workflow<String, String>("neg-sleep") { _ -> sleep((-1).seconds, id = "nap"); "no" }
            val hashId = workflow<String, String>("hash-id") { _ -> step("a#1") { "no" } }
            val badTimeout = workflow<String, String>("neg-timeout") { _ -> awaitSignal<String>("s", timeout = (-1).seconds) }
            val nested = workflow<String, String>("nested") { _ ->
                val workflowScope = this
                step("outer") { workflowScope.sleep(1.seconds); "no" }
            }
            stentWorker(stent) { register(negative); register(hashId); register(badTimeout); register(nested) }.use {
                val expected = mapOf(
                    "neg-sleep" to "sleep: duration must not be negative, was -1s (workflow 'neg-sleep', run 'r-neg-sleep')",
                    "hash-id" to "'#' is reserved for generated ids; use '-' or '.' (workflow 'hash-id', run 'r-hash-id')",
                    "neg-timeout" to "timeout must not be negative (null or INFINITE for none), was -1s (workflow 'neg-timeout', run 'r-neg-timeout')",
                    "nested" to "sleep() was called inside step 'outer' in workflow 'nested' (run 'r-nested'): Stent calls",
                )
                for ((name, text) in expected) {
                    val e = shouldThrow<WorkflowFailedException> {
                        stent.client.startByName<String, String>(name, "", id = "r-$name").await(10.seconds)
                    }
                    withClue(name) { e.failure.message!! shouldContain text }
                }
            }
        }
    }

    test("oversized step results and deeply nested payloads are clear payload errors, never a StackOverflowError") {
        withStore(store, StentOptions(maxPayloadBytes = 1_000)) { stent ->
            val big = workflow<String, String>("big-result") { _ -> step("make") { "y".repeat(2_000) } }
            var deep: JsonElement = JsonPrimitive(1)
            repeat(100_000) { deep = JsonArray(listOf(deep)) }
            val nestedInput = workflow<JsonElement, String>("nested-input") { "never" }
            stentWorker(stent) { register(big) }.use {
                val e = shouldThrow<WorkflowFailedException> { stent.client.start(big, "", id = "b").await(10.seconds) }
                e.failure.cause!!.type shouldBe PayloadException::class.java.name
                e.failure.cause!!.message!! shouldContain "the result of step 'make' is too large"
            }
            val p = shouldThrow<PayloadException> { stent.client.start(nestedInput, deep, id = "deep") }
            p.problem shouldBe PayloadProblem.NOT_ENCODABLE
            p.message!! shouldContain "nested too deeply"
            shouldThrow<UnknownRunException> { stent.client.describe("deep") }
        }
    }
})

class SqliteExtremesSpec : ExtremesSuite(TestStore.Sqlite)

class PostgresExtremesSpec : ExtremesSuite(TestStore.Postgres)
