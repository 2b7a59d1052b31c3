package dev.stent.runtime.internal

import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.time.Instant
import java.time.ZoneId
import java.time.ZoneOffset

class CronSpec : FunSpec({
    fun ms(text: String) = Instant.parse(text).toEpochMilli()
    fun times(ticks: List<Long>) = ticks.map { Instant.ofEpochMilli(it).toString() }
    val everySecond = Cron.parse("* * * * * *", ZoneOffset.UTC)

    test("ticks fall on whole seconds whatever the milliseconds of now") {
        everySecond.next(ms("2026-12-01T10:00:13.200Z")) shouldBe ms("2026-12-01T10:00:14Z")
        everySecond.next(ms("2026-12-01T10:00:13Z")) shouldBe ms("2026-12-01T10:00:14Z")
        everySecond.next(ms("2026-12-01T10:00:12.999Z")) shouldBe ms("2026-12-01T10:00:13Z")
    }

    test("a schedule due at 12 s read at 13.2 s starts the ticks of 12 s and 13 s, and is due next at 14 s") {
        val plan = everySecond.plan(ms("2026-12-01T10:00:12Z"), ms("2026-12-01T10:00:13.200Z"), catchUp = 0)
        times(plan.ticks) shouldBe listOf("2026-12-01T10:00:12Z", "2026-12-01T10:00:13Z")
        plan.nextFireAt shouldBe ms("2026-12-01T10:00:14Z")
    }

    test("ticks missed long ago: the newest always starts, and catchUp of the older ones") {
        val nightly = Cron.parse("0 3 * * *", ZoneOffset.UTC)
        val due = ms("2026-11-20T03:00:00Z")
        val now = ms("2026-12-01T10:00:00Z")
        times(nightly.plan(due, now, catchUp = 0).ticks) shouldBe listOf("2026-12-01T03:00:00Z")
        times(nightly.plan(due, now, catchUp = 2).ticks) shouldBe listOf("2026-11-29T03:00:00Z", "2026-11-30T03:00:00Z", "2026-12-01T03:00:00Z")
        times(nightly.plan(due, now, catchUp = 1000).ticks).size shouldBe 12
        nightly.plan(due, now, catchUp = 0).nextFireAt shouldBe ms("2026-12-02T03:00:00Z")
    }

    test("a tick exactly at now starts; expressions are read in their zone, daylight saving time included") {
        times(everySecond.plan(ms("2026-12-01T10:00:13Z"), ms("2026-12-01T10:00:13Z"), 0).ticks) shouldBe listOf("2026-12-01T10:00:13Z")
        val paris = Cron.parse("0 3 * * *", ZoneId.of("Europe/Paris"))
        paris.next(ms("2026-07-01T00:00:00Z")) shouldBe ms("2026-07-01T01:00:00Z") // 03:00 summer time is 01:00 UTC
        paris.next(ms("2026-12-01T00:00:00Z")) shouldBe ms("2026-12-01T02:00:00Z")
    }

    test("a bad expression says why") {
        shouldThrow<IllegalArgumentException> { Cron.parse("* * *", ZoneOffset.UTC) }.message shouldContain "use 5"
        shouldThrow<IllegalArgumentException> { Cron.parse("61 * * * *", ZoneOffset.UTC) }
    }

    test("run ids carry the tick") {
        Cron.runId("nightly", ms("2026-12-01T03:00:00Z")) shouldBe "schedule:nightly@2026-12-01T03:00:00Z"
    }
})
