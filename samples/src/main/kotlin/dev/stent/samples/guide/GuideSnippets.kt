package dev.stent.samples.guide

import dev.stent.SignalTimeoutException
import dev.stent.Stent
import dev.stent.StentOptions
import dev.stent.StepFailedException
import dev.stent.awaitSignal
import dev.stent.exposed.postgres
import dev.stent.exposed.sqlite
import dev.stent.retryPolicy
import dev.stent.samples.Approval
import dev.stent.samples.OrderRequest
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import kotlinx.serialization.Serializable
import java.time.Instant
import javax.sql.DataSource
import kotlin.time.Duration.Companion.days
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

// The code of docs/getting-started.md, docs/concepts.md, docs/workers.md and docs/operations/postgres.md.
// It compiles with the build, and DocsFromSamplesSpec checks that the pages show it as written here;
// nothing runs it.

@Serializable
data class Charge(val id: String, val amount: Long)

@Serializable
data class Request(val item: String)

@Serializable
data class Quote(val item: String, val price: Long)

/** A payment service that takes an idempotency key, as the guide's steps call it. */
class PaymentService {
    fun authorize(req: OrderRequest) = "auth-${req.id}"

    fun charge(req: OrderRequest, idempotencyKey: String) = Charge(idempotencyKey, req.amount)
}

class MailService {
    fun declined(req: OrderRequest, reason: String?) = "declined ${req.id}: $reason"
}

val payments = PaymentService()
val mail = MailService()

fun openSqlite(): Stent {
    val stent = Stent.sqlite("stent.db") // creates the file and the tables if needed
    return stent
}

fun openPostgres(password: String): Stent {
    val stent = Stent.postgres("jdbc:postgresql://localhost:5432/app", "stent", password, schema = "stent")
    return stent
}

fun openPostgresFully(): Stent {
    val stent = Stent.postgres(
        jdbcUrl = "jdbc:postgresql://db.internal:5432/app",
        user = "stent",
        password = System.getenv("STENT_DB_PASSWORD"),
        schema = "stent", // optional; default: the connection's search path
        poolSize = 10, // the default
        options = StentOptions(), // the payload limit and other options
    )
    return stent
}

fun openPostgresFromDataSource(dataSource: DataSource): Stent {
    val stent = Stent.postgres(dataSource, schema = "stent", maxConnections = 10)
    return stent
}

val order = workflow<OrderRequest, String>("order", {
    retryPolicy = retryPolicy { maxAttempts = 5; initialDelay = 2.seconds }
    queue = "orders"
}) { req ->
    val charge = step("charge") { payments.charge(req, idempotencyKey = idempotencyKey) }
    "charged ${charge.amount}"
}

val orderWithFallbacks = workflow<OrderRequest, String>("order-with-fallbacks") { req ->
    val approval = try {
        awaitSignal<Approval>("approval", timeout = 1.days)
    } catch (e: SignalTimeoutException) {
        Approval("auto")
    }
    val auth = try {
        step("authorize") { payments.authorize(req) }
    } catch (e: StepFailedException) {
        step("notify-declined") { mail.declined(req, e.failure.message) }
        return@workflow "declined"
    }
    val policy = retryPolicy {
        maxAttempts = 5
        initialDelay = 2.seconds
        nonRetryable(IllegalArgumentException::class)
    }
    step("charge", policy) { payments.charge(req, idempotencyKey) }
    "approved by ${approval.by} ($auth)"
}

val quote = workflow<Request, Quote>("quote", { timeout = 10.minutes }) { req -> Quote(req.item, 42) }

suspend fun startQuote(stent: Stent, req: Request) {
    val client = stent.client
    client.start(quote, req, deadline = Instant.now().plusSeconds(30)) // overrides the timeout
}

suspend fun runAndCancel(stent: Stent) {
    val worker = stentWorker(stent) {
        register(order)
        concurrency = 32
        queues = setOf("orders")
    }
    val run = stent.client.start(order, OrderRequest("o-42", 1999), id = "o-42")
    val status = run.cancel() // or stent.client.cancel("o-42")
    println("o-42 is $status")
    // … the application runs; when it stops:
    worker.close() // or worker.shutdown(grace) from a coroutine; then stent.close()
}
