package dev.stent.runtime.internal

import dev.stent.StentStoreException
import dev.stent.store.RunRecord
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.launch

/**
 * Reads runs for awaiters, coalesced: reads asked for while one is in flight go to the database
 * together in the next statement. One awaiter reads at once, alone; five thousand awaiters of a
 * burst cost a handful of statements instead of one each. The reads run in [scope], so an
 * awaiter that gives up never fails the reads of the others.
 */
internal class RunReader(private val access: StoreAccess, private val scope: CoroutineScope) {
    private class Request(val runId: String, val result: CompletableDeferred<RunRecord?>)

    private val lock = Any()

    // guarded by lock
    private var pending = ArrayList<Request>()
    private var reading = false

    /** The run, or null if it does not exist; a database error is thrown as a [dev.stent.StentStoreException]. */
    suspend fun read(runId: String): RunRecord? {
        val request = Request(runId, CompletableDeferred())
        val start = synchronized(lock) {
            pending.add(request)
            !reading.also { reading = true }
        }
        if (start) {
            scope.launch(access.dispatcher) { drain() }.invokeOnCompletion { cause ->
                // the Stent was closed before or while reading: fail what is left instead of leaving it waiting
                if (cause != null) failPending(StentStoreException("cannot read run '$runId': this Stent is closed", cause))
            }
        }
        return request.result.await()
    }

    private fun failPending(e: Exception) {
        val left = synchronized(lock) {
            reading = false
            pending.also { pending = ArrayList() }
        }
        left.forEach { it.result.completeExceptionally(e) }
    }

    private fun drain() {
        while (true) {
            val batch = synchronized(lock) {
                if (pending.isEmpty()) {
                    reading = false
                    return
                }
                pending.also { pending = ArrayList() }
            }
            for (chunk in batch.chunked(MAX_PER_STATEMENT)) {
                try {
                    val runs = access.inline("reading ${chunk.size} run(s)") { getRuns(chunk.mapTo(HashSet()) { it.runId }) }
                        .associateBy { it.id }
                    chunk.forEach { it.result.complete(runs[it.runId]) }
                } catch (e: Exception) {
                    chunk.forEach { it.result.completeExceptionally(e) }
                }
            }
        }
    }

    private companion object {
        const val MAX_PER_STATEMENT = 500
    }
}
