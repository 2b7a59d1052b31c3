package dev.stent

import dev.stent.internal.ClientImpl
import dev.stent.internal.LocalNotifier
import dev.stent.internal.StoreAccess
import dev.stent.store.WorkflowStore
import kotlinx.coroutines.CoroutineName
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel

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
) : AutoCloseable {
    @InternalStentApi
    @get:JvmSynthetic
    public val access: StoreAccess = StoreAccess(store)

    @InternalStentApi
    @get:JvmSynthetic
    public val notifier: LocalNotifier = LocalNotifier()

    /** Owns the coroutines of futures handed to Java callers; cancelled by [close]. */
    @InternalStentApi
    @get:JvmSynthetic
    public val scope: CoroutineScope = CoroutineScope(SupervisorJob() + Dispatchers.Default + CoroutineName("stent"))

    /** Starts, signals, awaits, describes and cancels runs (Kotlin; Java uses `FutureClient.of(stent)`). */
    @get:JvmSynthetic
    public val client: StentClient = ClientImpl(this)

    private val wakeUps: AutoCloseable = store.startWakeUps(notifier)

    /** Stops listening for wake-ups and closes the store. Close workers first. */
    override fun close() {
        scope.cancel()
        wakeUps.close()
        store.close()
    }

    /** Factories live in the store module (`Stent.sqlite(path)`). */
    public companion object
}

/** Installation-wide options. */
public class StentOptions(
    /** The largest encoded input, output, step result or signal payload, in bytes (default 1 MiB). */
    public val maxPayloadBytes: Int = 1 shl 20,
) {
    init {
        require(maxPayloadBytes > 0) { "maxPayloadBytes must be positive, was $maxPayloadBytes" }
    }
}
