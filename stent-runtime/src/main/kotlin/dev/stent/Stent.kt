@file:OptIn(dev.stent.InternalStentApi::class)

package dev.stent

import dev.stent.runtime.internal.ClientImpl
import dev.stent.runtime.internal.Listeners
import dev.stent.runtime.internal.LocalNotifier
import dev.stent.runtime.internal.StoreAccess
import dev.stent.store.WorkflowStore
import kotlinx.coroutines.CoroutineName
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlin.time.Duration
import kotlin.time.Duration.Companion.hours
import kotlin.time.Duration.Companion.seconds

/**
 * One Stent installation: a store (SQLite file or PostgreSQL database), its [client], and the
 * in-process wake-ups shared by the workers and clients of this JVM.
 *
 * Create one per database and process with a factory such as `Stent.sqlite("stent.db")`, share
 * it, and [close] it last. Thread-safe.
 */
public class Stent(
    /** The store runs and records live in. */
    @property:InternalStentApi @get:JvmSynthetic public val store: WorkflowStore,
    /** Installation-wide options. */
    public val options: StentOptions = StentOptions(),
    /**
     * A virtual clock (epoch milliseconds) that stands for the database's and the workers' clocks,
     * or null for real time. Only the test kit sets one, with a store that reads it too.
     */
    @property:InternalStentApi @get:JvmSynthetic public val virtualClock: java.util.function.LongSupplier? = null,
) : AutoCloseable {
    internal val access: StoreAccess = StoreAccess(store, options.storeTimeout.inWholeMilliseconds)

    internal val notifier: LocalNotifier = LocalNotifier()

    internal val listeners: Listeners = Listeners()

    /** The workers of this installation that are running: a start may hand its run to one with a free slot (see [ClientImpl.start]). */
    internal val localWorkers: java.util.concurrent.CopyOnWriteArrayList<dev.stent.runtime.internal.worker.WorkerEngine> =
        java.util.concurrent.CopyOnWriteArrayList()

    /**
     * Registers [listener] for every run this installation starts or executes (its workers' runs too);
     * closing the returned handle removes it. See [StentListener].
     */
    public fun addListener(listener: StentListener): AutoCloseable = listeners.add(listener)

    /**
     * Installs the tracing hook: see [StentTracing]. One per installation: a later call replaces it. Closing the
     * returned handle removes it (and nothing, once another replaced it).
     */
    public fun setTracing(tracing: StentTracing): AutoCloseable = listeners.setTracing(tracing)

    /** Owns the coroutines of futures handed to Java callers; cancelled by [close]. */
    internal val scope: CoroutineScope = CoroutineScope(SupervisorJob() + Dispatchers.Default + CoroutineName("stent"))

    /**
     * Tells the workers of this installation that [virtualClock] moved: they look for runs and
     * schedules that came due at once, instead of at their next poll.
     */
    @InternalStentApi
    public fun clockMoved() {
        notifier.workAvailable.fire()
        notifier.clockMoved.fire()
    }

    /** Starts, signals, awaits, describes and cancels runs (Kotlin; Java uses `FutureClient.of(stent)`). */
    @get:JvmSynthetic
    public val client: StentClient = ClientImpl(this)

    private val wakeUps: AutoCloseable = store.startWakeUps(notifier)

    /** True once [close] was called: nothing can be started, read or executed through this installation any more. */
    @Volatile
    public var isClosed: Boolean = false
        private set

    /**
     * Stops listening for wake-ups and closes the store (its connection pool). Close workers
     * first. Returns within a few seconds even when the database hangs: connections still busy
     * are aborted.
     */
    override fun close() {
        isClosed = true
        scope.cancel()
        wakeUps.close()
        store.close()
    }

    /** Factories live in the store module (`Stent.sqlite(path)`). */
    public companion object
}

/** Installation-wide options. */
public class StentOptions @JvmOverloads constructor(
    /** The largest encoded input, output, step result or signal payload, in bytes (default 1 MiB). */
    public val maxPayloadBytes: Int = 1 shl 20,
    /**
     * The longest one database call may take (default 30 s; 1 s to 1 hour). On the PostgreSQL pools
     * Stent creates it is the server's `statement_timeout` and the driver's socket timeout; writes
     * waiting behind a grouped write give up after twice this. A run stuck in a call longer than
     * its lease is no longer renewed, so another worker takes it over.
     */
    @get:JvmSynthetic public val storeTimeout: Duration = 30.seconds,
    /**
     * Apply missing schema migrations when the store opens (default). With false the store only checks
     * that the database has this Stent's schema, and fails with [StentSchemaException] if not: for tools
     * that must never create or change tables (the `stent` CLI), or when migrations are run apart.
     */
    public val migrate: Boolean = true,
) {
    init {
        @OptIn(InternalStentApi::class)
        requireArgument(maxPayloadBytes > 0) { "maxPayloadBytes must be positive, was $maxPayloadBytes" }
        @OptIn(InternalStentApi::class)
        requireArgument(storeTimeout >= 1.seconds && storeTimeout <= 1.hours) { "storeTimeout must be within 1 s..1 hour, was $storeTimeout" }
    }
}
