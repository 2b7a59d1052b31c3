package com.example.orders

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

@Serializable
data class Order(val id: String, val cents: Long)

@Serializable
data class Approval(val by: String)

val order = workflow<Order, String>("order") { order ->
    val auth = step("authorize") { "auth-${order.id}" }
    val ok = awaitSignal<Approval>("approval", timeout = 1.days)
    step("ship") { "order ${order.id} shipped ($auth, approved by ${ok.by})" }
}

fun main() = runBlocking {
    File("target/orders.db").delete()
    Stent.sqlite("target/orders.db").use { stent ->
        stentWorker(stent) { register(order) }.use {
            val run = stent.client.start(order, Order("o-7", 1200))
            stent.client.signal(run.id, "approval", Approval("ana"))
            // the Kotlin standard library Stent runs on: the version Stent is built with, whatever else the build brings
            println("${run.await()} on Kotlin ${KotlinVersion.CURRENT}")
        }
    }
}
