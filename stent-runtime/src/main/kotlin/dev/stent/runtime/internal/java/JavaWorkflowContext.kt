package dev.stent.runtime.internal.java

import dev.stent.Codec
import dev.stent.RetryPolicy
import dev.stent.StepCache
import dev.stent.WorkflowDefinition
import dev.stent.WorkflowScope
import dev.stent.java.ChildRef
import dev.stent.java.JavaCodecs
import dev.stent.java.StepAction
import dev.stent.java.StepSupplier
import dev.stent.java.WorkflowContext
import dev.stent.runtime.internal.engine.InStep
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.runBlocking
import java.time.Duration
import java.time.Instant
import java.util.UUID
import kotlin.coroutines.CoroutineContext
import kotlin.coroutines.EmptyCoroutineContext
import kotlin.time.toKotlinDuration

/**
 * The [WorkflowContext] of one Java run: each call blocks the Java thread while the suspend
 * [scope] call runs in the run's own coroutine context (its serial dispatcher and its job, so an
 * unload or a cancel reaches it). Step bodies run where the engine runs every step body (see `RunEnvironment.stepDispatcher`).
 */
internal class JavaWorkflowContext(private val scope: WorkflowScope, private val runContext: CoroutineContext) : WorkflowContext {
    /**
     * The step whose body runs on this thread (Java bodies cannot carry coroutine context): a call
     * made from it carries the step into the engine, which rejects it as misuse and fails the run.
     */
    private val inStep = ThreadLocal<InStep?>()

    private fun <T> call(block: suspend WorkflowScope.() -> T): T =
        runBlocking(runContext + (inStep.get() ?: EmptyCoroutineContext)) { scope.block() }

    override val runId: String get() = scope.runId
    override val workflowName: String get() = scope.workflowName

    override fun <I, O> startChild(workflow: WorkflowDefinition<I, O>, input: I): ChildRef<O> = startChild(workflow, input, null, false)

    override fun <I, O> startChild(workflow: WorkflowDefinition<I, O>, input: I, id: String?, detached: Boolean): ChildRef<O> {
        val child = call { startChild(workflow, input, id, detached) }
        return object : ChildRef<O> {
            override val runId: String get() = child.runId
            override fun await(): O = call { child.await() }
        }
    }

    override fun <I, O> child(workflow: WorkflowDefinition<I, O>, input: I): O = startChild(workflow, input).await()

    override fun <I, O> child(workflow: WorkflowDefinition<I, O>, input: I, id: String): O = startChild(workflow, input, id, false).await()

    override fun <I, O> map(workflow: WorkflowDefinition<I, O>, inputs: List<I>): List<O> = call { map(workflow, inputs) }

    override fun <I, O> map(workflow: WorkflowDefinition<I, O>, inputs: List<I>, id: String): List<O> = call { map(workflow, inputs, id) }

    override fun <T : Any> step(id: String, resultType: Class<T>, body: StepSupplier<T>): T =
        runStep(id, JavaCodecs.forClass(resultType), null, null, body)

    override fun <T : Any> step(id: String, resultType: Class<T>, retry: RetryPolicy, body: StepSupplier<T>): T =
        runStep(id, JavaCodecs.forClass(resultType), retry, null, body)

    override fun <T> step(id: String, codec: Codec<T>, body: StepSupplier<T>): T = runStep(id, codec, null, null, body)

    override fun <T> step(id: String, codec: Codec<T>, retry: RetryPolicy, body: StepSupplier<T>): T = runStep(id, codec, retry, null, body)

    override fun <T : Any> step(id: String, resultType: Class<T>, retry: RetryPolicy?, timeout: Duration?, body: StepSupplier<T>): T =
        runStep(id, JavaCodecs.forClass(resultType), retry, timeout, body)

    override fun <T> step(id: String, codec: Codec<T>, retry: RetryPolicy?, timeout: Duration?, body: StepSupplier<T>): T =
        runStep(id, codec, retry, timeout, body)

    override fun <T : Any> step(id: String, resultType: Class<T>, cache: StepCache, body: StepSupplier<T>): T =
        runStep(id, JavaCodecs.forClass(resultType), null, null, body, cache)

    override fun <T> step(id: String, codec: Codec<T>, cache: StepCache, body: StepSupplier<T>): T = runStep(id, codec, null, null, body, cache)

    private fun <T> runStep(
        id: String,
        codec: Codec<T>,
        retry: RetryPolicy?,
        timeout: Duration?,
        body: StepSupplier<T>,
        cache: StepCache? = null,
    ): T = call {
        step(id, codec, retry, timeout?.toKotlinDuration(), cache) {
            // already on a thread made for blocking, which the step's InStep interrupts on a stop
            inStep.set(currentCoroutineContext()[InStep])
            try {
                body.get()
            } finally {
                inStep.remove()
            }
        }
    }

    override fun run(id: String, body: StepAction) {
        runStep(id, JavaCodecs.forClass(String::class.java), null, null, {
            body.run()
            "done"
        })
    }

    override fun sleep(duration: Duration) = call { sleep(duration.toKotlinDuration()) }
    override fun sleep(duration: Duration, id: String) = call { sleep(duration.toKotlinDuration(), id) }
    override fun sleepUntil(instant: Instant) = call { sleepUntil(instant) }
    override fun sleepUntil(instant: Instant, id: String) = call { sleepUntil(instant, id) }

    override fun <T : Any> awaitSignal(name: String, type: Class<T>): T =
        JavaCodecs.forClass(type).let { codec -> call { awaitSignal(name, codec) } }

    override fun <T : Any> awaitSignal(name: String, type: Class<T>, timeout: Duration): T =
        JavaCodecs.forClass(type).let { codec -> call { awaitSignal(name, codec, timeout.toKotlinDuration()) } }

    override fun <T> awaitSignal(name: String, codec: Codec<T>): T = call { awaitSignal(name, codec) }

    override fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration): T =
        call { awaitSignal(name, codec, timeout.toKotlinDuration()) }

    override fun <T> awaitSignal(name: String, codec: Codec<T>, timeout: Duration?, id: String?): T =
        call { awaitSignal(name, codec, timeout?.toKotlinDuration(), id) }

    @Suppress("UNCHECKED_CAST")
    override fun setEvent(key: String, value: Any) {
        val codec = JavaCodecs.forClass(value.javaClass) as Codec<Any>
        call { setEvent(key, value, codec) }
    }

    override fun now(): Instant = call { now() }
    override fun version(changeId: String, minSupported: Int, maxSupported: Int): Int = call { version(changeId, minSupported, maxSupported) }
    override fun <O> continueAsNew(input: Any?): O = call { continueAsNew(input) }
    override fun now(id: String): Instant = call { now(id) }
    override fun randomUuid(): UUID = call { randomUuid() }
    override fun randomUuid(id: String): UUID = call { randomUuid(id) }
    override fun random(): Double = call { random() }
    override fun random(id: String): Double = call { random(id) }
}
