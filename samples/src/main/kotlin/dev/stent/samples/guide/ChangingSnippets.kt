package dev.stent.samples.guide

import dev.stent.Stent
import dev.stent.WorkflowReplayer
import dev.stent.WorkflowScope
import dev.stent.awaitSignal
import dev.stent.patched
import dev.stent.samples.Approval
import dev.stent.samples.Authorization
import dev.stent.samples.OrderRequest
import dev.stent.step
import dev.stent.workflow
import java.nio.file.Path
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.seconds

// The code of docs/changing-workflows.md. It compiles with the build, and DocsFromSamplesSpec checks that
// the page shows it as written here; nothing runs it.

object Fraud {
    fun score(req: OrderRequest): Int = (req.amount % 100).toInt()
}

/** The order workflow after a change: a fraud check before the authorization, for new runs only. */
val orderV2 = workflow<OrderRequest, String>("order") { req ->
    if (version("fraud-check", WorkflowScope.DEFAULT_VERSION, 1) == 1) {
        val score = step("fraud-score") { Fraud.score(req) }
        if (score > 90) return@workflow "order ${req.id} held for review"
    }
    val auth = step("authorize") { Authorization("auth-${req.id}", req.amount) }
    sleep(2.seconds)
    val ok = awaitSignal<Approval>("approval", timeout = 1.days)
    step("ship") { "order ${req.id} shipped (${auth.code}, approved by ${ok.by})" }
}

/** The same change with patched(): true for runs that reach the call first. */
val orderPatched = workflow<OrderRequest, String>("order") { req ->
    if (patched("fraud-check")) step("fraud-score") { Fraud.score(req) }
    val auth = step("authorize") { Authorization("auth-${req.id}", req.amount) }
    "order ${req.id} authorized (${auth.code})"
}

/** Months later, once no run on the old path is left: the old path is gone, and the replayer checks that it may be. */
val orderV3 = workflow<OrderRequest, String>("order") { req ->
    version("fraud-check", 1, 1)
    val score = step("fraud-score") { Fraud.score(req) }
    if (score > 90) return@workflow "order ${req.id} held for review"
    val auth = step("authorize") { Authorization("auth-${req.id}", req.amount) }
    "order ${req.id} authorized (${auth.code})"
}

/** Before a deploy: every history kept beside the code still replays. */
fun guardDeploy() {
    WorkflowReplayer.assertAll(listOf(orderV2), Path.of("src/test/resources/histories"))
}

/** Export a run's history to keep it beside the code. */
suspend fun keepHistory(stent: Stent, runId: String) {
    stent.client.history(runId).write(Path.of("src/test/resources/histories/$runId.json"))
}

@kotlinx.serialization.Serializable
data class Subscription(val customer: String, val month: Int)

/** A subscription that bills every 30 days for ever: each month is a fresh run with an empty history. */
val subscription = workflow<Subscription, Unit>("subscription") { sub ->
    step("bill-${sub.month}") { "billed ${sub.customer} for month ${sub.month}" }
    sleep(30.days)
    continueAsNew(sub.copy(month = sub.month + 1))
}
