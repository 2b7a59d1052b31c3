package dev.stent.samples.guide

import dev.stent.ChildFailedException
import dev.stent.Stent
import dev.stent.awaitEvent
import dev.stent.child
import dev.stent.setEvent
import dev.stent.startByName
import dev.stent.step
import dev.stent.workflow
import kotlinx.serialization.Serializable
import kotlin.time.Duration.Companion.minutes

// The code of docs/composition.md. It compiles with the build, and DocsFromSamplesSpec checks that the
// page shows it as written here; nothing runs it.

@Serializable
data class Parcel(val id: String, val grams: Int)

@Serializable
data class Label(val parcelId: String, val carrier: String)

@Serializable
data class Shipment(val orderId: String, val parcels: List<Parcel>)

object Carriers {
    fun label(parcel: Parcel) = Label(parcel.id, if (parcel.grams > 2_000) "freight" else "post")

    fun notify(shipment: Shipment) = "notified ${shipment.orderId}"
}

val printLabel = workflow<Parcel, Label>("print-label") { parcel ->
    step("label") { Carriers.label(parcel) }
}

val ship = workflow<Shipment, List<Label>>("ship") { shipment ->
    val first = child(printLabel, shipment.parcels.first(), id = "first-label")
    val tracking = startChild(printLabel, shipment.parcels.last(), id = "last-label")
    val rest = map(printLabel, shipment.parcels.drop(1).dropLast(1), id = "labels")
    listOf(first) + rest + tracking.await()
}

val shipOrRefund = workflow<Shipment, String>("ship-or-refund") { shipment ->
    try {
        child(ship, shipment, id = "ship").size.toString()
    } catch (e: ChildFailedException) {
        step("refund") { "refunded ${shipment.orderId}: ${e.failure.message}" }
    }
}

val audit = workflow<Shipment, String>("audit") { shipment -> step("audit") { "audited ${shipment.orderId}" } }

val shipAndAudit = workflow<Shipment, String>("ship-and-audit") { shipment ->
    startChild(audit, shipment, id = "audit", detached = true) // outlives this run, even a cancel of it
    child(ship, shipment, id = "ship").size.toString()
}

val packAll = workflow<Shipment, Int>("pack-all") { shipment ->
    shipment.parcels.forEachIndexed { i, parcel ->
        step("pack-${parcel.id}") { Carriers.label(parcel) }
        setEvent("packed", i + 1) // version 1, 2, …: recorded, so a replay publishes nothing again
    }
    shipment.parcels.size
}

suspend fun watch(stent: Stent, runId: String) {
    var seen = 0L
    while (true) {
        val event = stent.client.awaitEvent<Int>(runId, "packed", afterVersion = seen, timeout = 1.minutes) ?: break // null: the run finished
        println("packed ${event.value} parcels")
        seen = event.version
    }
}

fun notifier(stent: Stent) = workflow<Shipment, String>("notify") { shipment ->
    step("start-notification") {
        // the id comes from the step's idempotency key: a retried body finds the run it started
        stent.client.startByName<Shipment, String>("send-notification", shipment, id = "$idempotencyKey/notification").id
    }
}
