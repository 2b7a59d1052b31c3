package dev.stent

import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.io.IOException
import java.time.Instant
import kotlin.random.Random
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

@OptIn(InternalStentApi::class)
class DslSpec : FunSpec({
    test("retry delays grow by the factor from the initial delay and stop at the cap") {
        val p = retryPolicy { initialDelay = 100.milliseconds; backoffFactor = 3.0; maxDelay = 1.seconds; jitter = 0.0 }
        (2..6).map { p.delayBefore(it) } shouldBe listOf(100, 300, 900, 1000, 1000).map { it.milliseconds }
    }

    test("jitter stays within its fraction of the delay") {
        val p = retryPolicy { initialDelay = 1.seconds; jitter = 0.2 }
        val r = Random(7)
        repeat(200) { (p.delayBefore(2, r).inWholeMilliseconds in 800..1200) shouldBe true }
    }

    test("what is retried: exceptions but not errors, Stent's own errors, the non-retryable marker or named types") {
        val p = retryPolicy { nonRetryable(IllegalArgumentException::class) }
        p.shouldRetry(IOException("x")) shouldBe true
        p.shouldRetry(IllegalArgumentException("x")) shouldBe false
        p.shouldRetry(NonRetryableException("x")) shouldBe false
        p.shouldRetry(StentConfigurationException("x")) shouldBe false
        p.shouldRetry(OutOfMemoryError()) shouldBe false
        val onlyTransient = retryPolicy { retryIf { it.message == "transient" } }
        onlyTransient.shouldRetry(IOException("permanent")) shouldBe false
        onlyTransient.shouldRetry(IOException("transient")) shouldBe true
        // the built-in exclusions still hold when the predicate says yes
        retryPolicy { retryIf { true } }.shouldRetry(NonRetryableException("x")) shouldBe false
        // a step's own timeout is the one Stent error that is retried
        p.shouldRetry(StepTimeoutException("r", "w", "s", 1, 1.seconds)) shouldBe true
    }

    test("a bad retry policy is refused with the field named") {
        shouldThrow<InvalidArgumentException> { retryPolicy { maxAttempts = 0 } }.message shouldContain "maxAttempts"
        shouldThrow<InvalidArgumentException> { retryPolicy { jitter = 2.0 } }.message shouldContain "jitter"
        shouldThrow<InvalidArgumentException> { retryPolicy { jitter = Double.NaN } }.message shouldContain "jitter"
        shouldThrow<InvalidArgumentException> { retryPolicy { initialDelay = Duration.INFINITE } }.message shouldContain "initialDelay must be finite"
        shouldThrow<InvalidArgumentException> { retryPolicy { initialDelay = (-1).seconds } }.message shouldContain "initialDelay"
        shouldThrow<InvalidArgumentException> { retryPolicy { backoffFactor = Double.POSITIVE_INFINITY } }.message shouldContain "backoffFactor"
    }

    test("retry delays at the extremes saturate instead of overflowing") {
        val uncapped = retryPolicy { initialDelay = 1.seconds; maxDelay = Duration.INFINITE; backoffFactor = 1_000.0; jitter = 1.0 }
        for (attempt in listOf(2, 10, 1_000, Int.MAX_VALUE)) {
            val d = uncapped.delayBefore(attempt, Random(attempt))
            (d >= Duration.ZERO && d <= TimeMath.MAX_DELAY) shouldBe true
        }
        retryPolicy { maxDelay = Duration.INFINITE; backoffFactor = 10.0; jitter = 0.0 }.delayBefore(1_000) shouldBe TimeMath.MAX_DELAY
        retryPolicy { initialDelay = Duration.ZERO; maxDelay = Duration.ZERO }.delayBefore(5) shouldBe Duration.ZERO
    }

    test("saturating time arithmetic never overflows a Long, a BIGINT or an Instant") {
        TimeMath.delayMs(Duration.ZERO) shouldBe 0
        TimeMath.delayMs(Duration.INFINITE) shouldBe TimeMath.MAX_DELAY_MS
        TimeMath.delayMs(Long.MAX_VALUE.milliseconds) shouldBe TimeMath.MAX_DELAY_MS
        shouldThrow<IllegalArgumentException> { TimeMath.delayMs((-1).milliseconds) }
        TimeMath.plus(1_000, Long.MAX_VALUE) shouldBe TimeMath.MAX_EPOCH_MS
        TimeMath.plus(Long.MAX_VALUE, Long.MAX_VALUE) shouldBe TimeMath.MAX_EPOCH_MS
        TimeMath.plus(1_000, Long.MIN_VALUE) shouldBe 0
        TimeMath.plus(1_000, 500) shouldBe 1_500
        TimeMath.wakeAt(1_000, Duration.INFINITE) shouldBe null
        TimeMath.wakeAt(1_000, 2.seconds) shouldBe 3_000
        TimeMath.epochMs(Instant.MAX) shouldBe TimeMath.MAX_EPOCH_MS
        TimeMath.epochMs(Instant.MIN) shouldBe 0
        TimeMath.epochMs(Instant.ofEpochMilli(42)) shouldBe 42
        Instant.ofEpochMilli(TimeMath.MAX_EPOCH_MS).toString() shouldBe "9999-12-31T23:59:59.999Z"
    }

    test("a failure records type, message, stack and the cause chain, and unwraps coroutine stack-trace copies") {
        val original = IllegalStateException("boom", IOException("disk"))
        val copy = IllegalStateException("boom", original) // what kotlinx.coroutines' recovery makes
        val f = Failure.of(copy)
        f.type shouldBe "java.lang.IllegalStateException"
        f.message shouldBe "boom"
        f.cause!!.type shouldBe "java.io.IOException"
        f.stackTrace shouldContain "DslSpec"
        f.toString() shouldBe "java.lang.IllegalStateException: boom\ncaused by: java.io.IOException: disk"
        Failure.of(RecordedException(f)) shouldBe f
    }

    test("workflow and queue names are checked when the workflow is defined") {
        shouldThrow<InvalidArgumentException> { workflow<String, String>(" padded") { it } }.message shouldContain "invalid workflow name ' padded'"
        shouldThrow<InvalidArgumentException> { workflow<String, String>("ok", { queue = "" }) { it } }.message shouldContain "invalid queue"
        shouldThrow<InvalidArgumentException> { workflow<String, String>("nul-\u0000") { it } }.message shouldContain
            "invalid workflow name 'nul-\\u0000': it contains a control character (code 0)"
        shouldThrow<InvalidArgumentException> { workflow<String, String>("x".repeat(201)) { it } }.message shouldContain "201 characters long"
        shouldThrow<InvalidArgumentException> { workflow<String, String>("t", { timeout = Duration.ZERO }) { it } }.message shouldContain
            "timeout must be positive"
        workflow<String, String>("t", { timeout = Duration.INFINITE }) { it }.timeout shouldBe null
    }

    test("the kotlinx codec round-trips and reports the type it handles") {
        val c = codecOf<List<Int>>()
        c.decode(c.encode(listOf(1, 2))) shouldBe listOf(1, 2)
        c.typeName shouldContain "List"
    }
})
