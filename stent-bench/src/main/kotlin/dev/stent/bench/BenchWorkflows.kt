package dev.stent.bench

import dev.stent.awaitSignal
import dev.stent.step
import dev.stent.workflow
import java.time.Instant
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.atomic.AtomicLong

/** What step bodies observed, for the scenarios that run their worker in the bench JVM. */
object Probes {
    val firstStep = AtomicLong()
    val lastStep = AtomicLong()
    val firstStepAt = ConcurrentHashMap<String, Long>()
    val afterReplay = AtomicLong()
    val timerLagMs = ConcurrentLinkedQueue<Long>()
    val mapChildrenDone = AtomicLong()

    fun reset() {
        firstStep.set(0); lastStep.set(0); firstStepAt.clear(); afterReplay.set(0); timerLagMs.clear()
    }
}

/** n sequential no-op steps. */
val noopSteps = workflow<Int, Int>("bench-steps") { n ->
    var sum = 0
    for (i in 1..n) {
        sum += step("s$i") {
            val t = System.nanoTime()
            if (i == 1) Probes.firstStep.set(t)
            if (i == n) Probes.lastStep.set(t)
            1
        }
    }
    sum
}

/** One no-op step. */
val oneStep = workflow<Int, Int>("bench-one") { n -> step("s") { n } }

/** Records when its first step body ran. */
val latency = workflow<String, Int>("bench-latency") { _ ->
    step("first") { Probes.firstStepAt[runId] = System.nanoTime(); 1 }
}

/** n steps, then a signal, then one more step: resuming it replays n records. */
val replay = workflow<Int, Int>("bench-replay") { n ->
    for (i in 1..n) step("s$i") { i }
    awaitSignal<String>("go")
    step("after") { Probes.afterReplay.set(System.nanoTime()); n }
}

/** Sleeps until an instant (epoch ms), then records how late the step after the timer ran. */
val sleeper = workflow<Long, Long>("bench-sleeper") { dueMs ->
    sleepUntil(Instant.ofEpochMilli(dueMs), id = "timer")
    step("after") { (System.currentTimeMillis() - dueMs).also { Probes.timerLagMs += it } }
}

/** One step that counts itself in [Probes.mapChildrenDone]. */
val countedStep = workflow<Int, Int>("bench-counted") { n -> step("s") { Probes.mapChildrenDone.incrementAndGet(); n } }

/** Maps [countedStep] over 0 until n: the parent whose memory `map_memory` watches. */
val mapCounted = workflow<Int, Long>("bench-map-counted") { n -> map(countedStep, (0 until n).toList(), id = "children").sumOf { it.toLong() } }

/** Maps [oneStep] over 0 until n as child runs that any worker takes; returns the sum of their outputs. */
val mapOne = workflow<Int, Long>("bench-map") { n -> map(oneStep, (0 until n).toList(), id = "children").sumOf { it.toLong() } }

/** One step that suspends for [ms] (a `delay`, standing in for a non-blocking call). */
val suspendingStep = workflow<Long, Long>("bench-suspending") { ms -> step("call") { kotlinx.coroutines.delay(ms); ms } }

/** One step that blocks its thread for [ms] (a `Thread.sleep`, standing in for JDBC). */
val blockingStep = workflow<Long, Long>("bench-blocking") { ms -> step("call") { Thread.sleep(ms); ms } }

val allBenchWorkflows = listOf(noopSteps, oneStep, latency, replay, sleeper, mapOne, countedStep, mapCounted, suspendingStep, blockingStep)
