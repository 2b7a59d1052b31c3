package dev.stent.internal

import dev.stent.InternalStentApi
import dev.stent.StentException
import dev.stent.StentStoreException
import dev.stent.store.LeaseLostException
import dev.stent.store.WorkflowStore
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * Runs blocking store calls on a dispatcher bounded by the store's connection pool, never on the
 * caller's thread, and turns unexpected database errors into [StentStoreException]s that name the
 * operation.
 */
@InternalStentApi
public class StoreAccess(public val store: WorkflowStore) {
    /** Bounded to the pool size, so coroutines queue here instead of blocking on the pool. */
    public val dispatcher: CoroutineDispatcher = Dispatchers.IO.limitedParallelism(store.maxConnections.coerceAtLeast(1))

    /** Runs [block] against the store on the bounded dispatcher; [what] names the operation in errors. */
    public suspend fun <T> call(what: String, block: WorkflowStore.() -> T): T = withContext(dispatcher) { inline(what, block) }

    /**
     * Runs [block] on the calling thread, which must be one made for blocking (a run's serial view of
     * the IO pool). The pool's size still bounds how many statements run at once. Saves two thread
     * hops per step, which cost more than the commit itself on a small machine.
     */
    public fun <T> inline(what: String, block: WorkflowStore.() -> T): T = try {
        store.block()
    } catch (e: StentException) {
        throw e
    } catch (e: LeaseLostException) {
        throw e
    } catch (e: Exception) {
        throw StentStoreException("database error while $what: ${e.message ?: e.javaClass.name}", e)
    }
}
