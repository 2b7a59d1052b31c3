package dev.stent

import dev.stent.internal.ClientImpl
import dev.stent.internal.LocalNotifier
import dev.stent.internal.StoreAccess
import dev.stent.store.WorkflowStore

/**
 * One Stent installation: a store (SQLite file or PostgreSQL database), its [client], and the
 * in-process wake-ups shared by the workers and clients of this JVM.
 *
 * Create one per database and process with a factory such as `Stent.sqlite("stent.db")`, share
 * it, and [close] it last. Thread-safe.
 */
public class Stent(
    /** The store runs and records live in. */
    @property:InternalStentApi public val store: WorkflowStore,
    /** Installation-wide options. */
    public val options: StentOptions = StentOptions(),
) : AutoCloseable {
    @InternalStentApi
    public val access: StoreAccess = StoreAccess(store)

    @InternalStentApi
    public val notifier: LocalNotifier = LocalNotifier()

    /** Starts, signals, awaits, describes and cancels runs. */
    public val client: StentClient = ClientImpl(this)

    private val wakeUps: AutoCloseable = store.startWakeUps(notifier)

    /** Stops listening for wake-ups and closes the store. Close workers first. */
    override fun close() {
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
