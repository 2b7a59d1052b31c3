package dev.stent.it

import dev.stent.javatest.OrderWorkflows
import dev.stent.signal
import dev.stent.startByName
import dev.stent.stentWorker
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import kotlinx.serialization.Serializable
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

@Serializable
data class KOrder(val id: String, val amount: Long)

@Serializable
data class KApproval(val by: String)

@Serializable
data class KReceipt(val orderId: String, val authCode: String, val approvedBy: String, val at: String, val token: String, val attempts: Int)

class InteropSpec : FunSpec({
    test("a Kotlin client starts a Java-defined workflow by name, with JSON both ways") {
        withStore(TestStore.Sqlite) { stent ->
            OrderWorkflows.AUTHORIZE_CALLS.set(0)
            stentWorker(stent) { register(OrderWorkflows.ORDER); unloadThreshold = 100.milliseconds }.use {
                val run = stent.client.startByName<KOrder, KReceipt>("java-order", KOrder("k-1", 5), id = "k-1")
                stent.client.signal("k-1", "approval", KApproval("kim"))
                val receipt = run.await(30.seconds)
                receipt.orderId shouldBe "k-1"
                receipt.authCode shouldBe "auth-k-1"
                receipt.approvedBy shouldBe "kim"
                receipt.at shouldContain "T" // an ISO instant written by Jackson
            }
        }
    }
})
