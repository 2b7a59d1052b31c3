package dev.stent.java

import dev.stent.Stent
import dev.stent.StentWorker
import dev.stent.WorkflowDefinition
import dev.stent.stentWorker
import java.time.Duration
import kotlin.time.toKotlinDuration

/**
 * Starts workers from Java:
 * `try (StentWorker worker = Workers.builder(stent).register(order).concurrency(16).start()) { … }`.
 * Options and defaults are those of the Kotlin `stentWorker { }`.
 */
public object Workers {
    @JvmStatic
    public fun builder(stent: Stent): Builder = Builder(stent)

    /** A fluent worker builder; [start] returns the running, `AutoCloseable` worker. */
    public class Builder internal constructor(private val stent: Stent) {
        private val steps = mutableListOf<StentWorker.Builder.() -> Unit>()

        private fun with(step: StentWorker.Builder.() -> Unit): Builder = apply { steps += step }

        /** Registers a workflow (Java- or Kotlin-defined). */
        public fun register(workflow: WorkflowDefinition<*, *>): Builder = with { register(workflow) }
        public fun workerId(id: String): Builder = with { workerId = id }
        public fun concurrency(n: Int): Builder = with { concurrency = n }
        public fun queues(vararg queues: String): Builder = with { this.queues = queues.toSet() }
        public fun leaseDuration(d: Duration): Builder = with { leaseDuration = d.toKotlinDuration() }
        public fun heartbeatInterval(d: Duration): Builder = with { heartbeatInterval = d.toKotlinDuration() }
        public fun shutdownGrace(d: Duration): Builder = with { shutdownGrace = d.toKotlinDuration() }
        public fun pollInterval(d: Duration): Builder = with { pollInterval = d.toKotlinDuration() }
        public fun unloadThreshold(d: Duration): Builder = with { unloadThreshold = d.toKotlinDuration() }
        public fun maxClaims(n: Int): Builder = with { maxClaims = n }
        public fun maxParallelStepsPerRun(n: Int): Builder = with { maxParallelStepsPerRun = n }
        public fun maxParallelSteps(n: Int): Builder = with { maxParallelSteps = n }
        public fun maxWaitingInMemory(n: Int): Builder = with { maxWaitingInMemory = n }

        /** Declares a queue's limits, stored when the worker starts (see `StentWorker.Builder.limit`). */
        public fun limit(limits: dev.stent.QueueLimits): Builder = with { limit(limits) }

        /** Deletes finished runs older than [age] (see `StentWorker.Builder.retention`). */
        public fun retention(age: Duration): Builder = with { retention = age.toKotlinDuration() }

        /** Hears the events of the runs this worker executes; see `StentListener`. */
        public fun listener(listener: dev.stent.StentListener): Builder = with { listener(listener) }

        /** Whether this worker fires schedules (default true). */
        public fun fireSchedules(fire: Boolean): Builder = with { fireSchedules = fire }

        /** How long a stopped run may take to unwind before it is abandoned; see `StentWorker.Builder.stopTimeout`. */
        public fun stopTimeout(d: Duration): Builder = with { stopTimeout = d.toKotlinDuration() }

        /** Starts the worker. */
        public fun start(): StentWorker = stentWorker(stent) { steps.forEach { it() } }
    }
}
