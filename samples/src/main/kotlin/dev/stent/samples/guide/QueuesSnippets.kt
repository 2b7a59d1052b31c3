package dev.stent.samples.guide

import dev.stent.FailureKind
import dev.stent.Stent
import dev.stent.StepCache
import dev.stent.queueLimits
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import kotlinx.serialization.Serializable
import java.time.ZoneId
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.hours
import kotlin.time.Duration.Companion.seconds

// The code of docs/queues.md. It compiles with the build, and DocsFromSamplesSpec checks that the
// page shows it as written here; nothing runs it.

@Serializable
data class Payment(val customer: String, val cents: Long)

object PaymentProvider {
    fun charge(payment: Payment, key: String) = "ch_${key.hashCode()}"

    fun rate(pair: String) = 1.08
}

val pay = workflow<Payment, String>("pay", { queue = "payments" }) { p ->
    val rate = step("fx-rate", cache = StepCache("fx:EUR:USD", ttl = 1.hours)) { PaymentProvider.rate("EUR") }
    step("charge") { PaymentProvider.charge(p.copy(cents = (p.cents * rate).toLong()), idempotencyKey) }
}

// at most 3 charges at once over every worker, 1 per customer, and 20 starts per second
val paymentLimits = queueLimits("payments") {
    concurrency = 3
    concurrencyPerKey = 1
    rateLimit(20, per = 1.seconds)
}

fun paymentsWorker(stent: Stent) = stentWorker(stent) {
    register(pay)
    limit(paymentLimits) // stored when the worker starts: every worker's claims apply it
    retention = 30.days // finished runs older than this are deleted, dead letters excepted
}

suspend fun chargeCustomer(stent: Stent, customer: String) {
    stent.client.start(pay, Payment(customer, 1999), partitionKey = customer)
}

suspend fun handleDeadLetters(stent: Stent) {
    for (run in stent.client.deadLetters(failureKind = FailureKind.STEP)) {
        println("${run.id} failed: ${run.failure}")
        if (run.workflowName == "pay") stent.client.retry(run.id) else stent.client.discard(run.id)
    }
}

val nightlyReport = workflow<String, String>("nightly-report") { day -> step("report") { "report for $day" } }

suspend fun scheduleReports(stent: Stent) {
    stent.client.schedule("nightly-report", "0 3 * * *", nightlyReport, "yesterday", zone = ZoneId.of("Europe/Paris"), catchUp = 2)
    for (s in stent.client.listSchedules()) println("${s.name}: next at ${s.nextFireAt}, paused=${s.paused}")
    stent.client.pauseSchedule("nightly-report")
    stent.client.resumeSchedule("nightly-report")
}
