package dev.stent

import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.io.IOException
import kotlin.random.Random
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

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
        retryPolicy { retryIf { it.message == "transient" } }.shouldRetry(IOException("permanent")) shouldBe false
    }

    test("a bad retry policy is refused with the field named") {
        shouldThrow<IllegalArgumentException> { retryPolicy { maxAttempts = 0 } }.message shouldContain "maxAttempts"
        shouldThrow<IllegalArgumentException> { retryPolicy { jitter = 2.0 } }.message shouldContain "jitter"
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
        shouldThrow<IllegalArgumentException> { workflow<String, String>(" padded") { it } }.message shouldContain "invalid workflow name ' padded'"
        shouldThrow<IllegalArgumentException> { workflow<String, String>("ok", { queue = "" }) { it } }.message shouldContain "invalid queue"
    }

    test("the kotlinx codec round-trips and reports the type it handles") {
        val c = codecOf<List<Int>>()
        c.decode(c.encode(listOf(1, 2))) shouldBe listOf(1, 2)
        c.typeName shouldContain "List"
    }
})
