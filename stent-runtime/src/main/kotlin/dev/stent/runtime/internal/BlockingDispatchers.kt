package dev.stent.runtime.internal

import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.asCoroutineDispatcher
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.ThreadFactory

/**
 * Where step bodies (Kotlin and Java) and Java workflow bodies run: they may block, so never on the engine's threads.
 * On JDK 21+ each gets a virtual thread; on 17 they share a bounded slice of the IO pool.
 */
internal object BlockingDispatchers {
    /** Bodies block while they wait for steps, so they get their own slice, apart from step bodies. */
    val bodies: CoroutineDispatcher = virtualThreads("stent-java-body-") ?: Dispatchers.IO.limitedParallelism(POOL_17)

    private val virtualSteps: CoroutineDispatcher? = virtualThreads("stent-step-")

    /**
     * Where a worker runs step bodies, Kotlin and Java (blocking JDBC, HTTP clients, `Thread.sleep`):
     * a virtual thread each, or on JDK 17 a slice of the IO pool as wide as the worker's
     * [parallelism], so a body that holds a step permit never queues for a thread.
     */
    fun steps(parallelism: Int): CoroutineDispatcher = virtualSteps ?: Dispatchers.IO.limitedParallelism(parallelism)

    private const val POOL_17 = 256

    /** A thread-per-task executor of virtual threads, found reflectively so the bytecode stays Java 17. */
    private fun virtualThreads(prefix: String): CoroutineDispatcher? = try {
        val ofVirtual = Thread::class.java.getMethod("ofVirtual").invoke(null)
        val builderClass = Class.forName("java.lang.Thread\$Builder")
        val named = builderClass.getMethod("name", String::class.java, Long::class.javaPrimitiveType).invoke(ofVirtual, prefix, 0L)
        val factory = builderClass.getMethod("factory").invoke(named) as ThreadFactory
        val executor = Executors::class.java.getMethod("newThreadPerTaskExecutor", ThreadFactory::class.java)
            .invoke(null, factory) as ExecutorService
        executor.asCoroutineDispatcher()
    } catch (e: ReflectiveOperationException) {
        null
    }
}
