package dev.stent.samples

import dev.stent.Stent
import dev.stent.awaitSignal
import dev.stent.exposed.sqlite
import dev.stent.signal
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.Serializable
import java.io.File
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.seconds

@Serializable
data class OrderRequest(val id: String, val amount: Long)

@Serializable
data class Approval(val by: String)

@Serializable
data class Authorization(val code: String, val amount: Long)

// The services a real order workflow would call; each call sits in a step, so it runs once per run.
object Payments {
    fun authorize(req: OrderRequest) = Authorization("auth-${req.id}", req.amount)
}

object Shipping {
    fun ship(req: OrderRequest, auth: Authorization, approval: Approval) =
        "order ${req.id} shipped (${auth.code}, ${req.amount} cents, approved by ${approval.by})"
}

val order = workflow<OrderRequest, String>("order") { req ->
    val auth = step("authorize") { Payments.authorize(req) } // checkpointed once
    sleep(2.seconds) // durable: a long sleep unloads the run (10.minutes in real life)
    val ok = awaitSignal<Approval>("approval", timeout = 1.days)
    step("ship") { Shipping.ship(req, auth, ok) }
}

fun main(args: Array<String>) = runBlocking {
    val path = args.firstOrNull() ?: "target/stent-sample.db"
    File(path).delete()
    Stent.sqlite(path).use { stent ->
        stentWorker(stent) {
            register(order)
            concurrency = 32
            unloadThreshold = 1.seconds // unload waits longer than a second, to show it
        }.use {
            val run = stent.client.start(order, OrderRequest("o-42", 1999), id = "o-42")
            stent.client.signal("o-42", "approval", Approval("ana"))
            println(run.await())
            val info = run.describe()
            println("run ${info.id}: ${info.status}, steps: " + info.records.joinToString { "${it.id}=${it.status}" })
        }
    }
}
