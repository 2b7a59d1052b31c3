package dev.stent.cli

import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentOptions
import dev.stent.codecOf
import dev.stent.exposed.Stents
import dev.stent.it.TestPg
import dev.stent.queueLimits
import dev.stent.retryPolicy
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.assertions.withClue
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldContainAll
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import io.kotest.matchers.string.shouldNotContain
import kotlinx.coroutines.delay
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.long
import java.io.File
import java.nio.file.Files
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** What the `stent` jar printed and returned. */
class Result(val code: Int, val out: String, val err: String) {
    override fun toString() = "exit $code\n--- stdout\n$out--- stderr\n$err"
}

/** Runs the jar the package phase built, as a person or a script would. */
fun stent(vararg args: String, env: Map<String, String> = emptyMap()): Result {
    val jar = File("target").listFiles { f -> f.name.startsWith("stent-cli-") && f.name.endsWith("-all.jar") }?.singleOrNull()
        ?: error("no target/stent-cli-*-all.jar: the CLI tests run after `mvn package`")
    val java = File(System.getProperty("java.home"), "bin/java").path
    val dir = Files.createTempDirectory("stent-cli-run").toFile()
    val out = File(dir, "out")
    val err = File(dir, "err")
    val p = ProcessBuilder(listOf(java, "-XX:TieredStopAtLevel=1", "-jar", jar.path) + args)
        .redirectOutput(out).redirectError(err)
        .apply { environment().keys.removeAll { it.startsWith("STENT_") }; environment().putAll(env) }
        .start()
    check(p.waitFor(120, TimeUnit.SECONDS)) { "stent ${args.joinToString(" ")} did not finish" }
    return Result(p.exitValue(), out.readText(), err.readText()).also { dir.deleteRecursively() }
}

/** A database with runs in every state, and the `--db` options that reach it. */
abstract class CliFixture {
    abstract val args: Array<String>
    abstract fun open(): Stent
}

class SqliteFixture : CliFixture() {
    private val path = Files.createTempDirectory("stent-cli").resolve("stent.db").toString()
    override val args = arrayOf("--db", "jdbc:sqlite:$path")
    override fun open(): Stent = Stents.sqlite(path)
}

class PostgresFixture : CliFixture() {
    private val schema = "cli_${ProcessHandle.current().pid()}"
    override val args = arrayOf("--db", TestPg.url, "--user", TestPg.user, "--password", TestPg.password, "--schema", schema)
    override fun open(): Stent = Stents.postgres(TestPg.url, TestPg.user, TestPg.password, schema, 4, StentOptions())
}

abstract class CliSuite(fixture: () -> CliFixture) : FunSpec({
    test("every command against runs in every state, as people and scripts use them") {
        val db = fixture()
        val release = CountDownLatch(1)
        db.open().use { stent ->
            val greet = workflow<String, String>("greet") { name -> step("hello") { "hello $name" } }
            // the message carries an ANSI escape that would clear a terminal
            val broken = workflow<String, String>("broken", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ -> step("boom") { error("boom \u001b[2J") } }
            val waiter = workflow<String, String>("waiter") { _ -> awaitSignal("go", codecOf<String>()) }
            val blocker = workflow<String, String>("blocker") { _ -> step("hold") { release.await(60, TimeUnit.SECONDS); "done" } }
            val orphan = workflow<String, String>("orphan") { it } // no worker serves it: its runs stay PENDING
            stentWorker(stent) {
                listOf(greet, broken, waiter, blocker).forEach { register(it) }
                pollInterval = 50.milliseconds
                unloadThreshold = 0.seconds
            }.use {
                stent.client.start(greet, "ana", id = "ok-1").await(30.seconds)
                stent.client.start(broken, "", id = "bad-1")
                repeat(3) { stent.client.start(broken, "", id = "bad-bulk-$it") }
                stent.client.start(waiter, "", id = "wait-1")
                stent.client.start(waiter, "", id = "cancel-1")
                stent.client.start(blocker, "", id = "run-1")
                stent.client.start(orphan, "", id = "pend-1")
                stent.client.schedule("nightly", "0 3 * * *", orphan, "")
                stent.client.setQueueLimits(queueLimits("payments") { concurrency = 3 })
                for (i in 1..300) {
                    val states = listOf("bad-1", "wait-1", "cancel-1", "run-1").map { stent.client.describe(it).status }
                    if (states == listOf(RunStatus.FAILED, RunStatus.WAITING, RunStatus.WAITING, RunStatus.RUNNING)) break
                    delay(50.milliseconds)
                }
                stent.client.cancel("cancel-1")

                val list = stent("runs", "list", *db.args)
                withClue(list) {
                    list.code shouldBe 0
                    val expected = listOf(
                        "ok-1" to "COMPLETED", "bad-1" to "FAILED (step)", "wait-1" to "WAITING", "cancel-1" to "CANCELLED", "run-1" to "RUNNING",
                        "pend-1" to "PENDING",
                    )
                    for ((id, status) in expected) {
                        list.out.lines().single { it.startsWith("$id ") } shouldContain status
                    }
                }
                val failed = stent("runs", "list", "--status", "failed", "--json", *db.args)
                withClue(failed) {
                    failed.code shouldBe 0
                    Json.parseToJsonElement(failed.out).jsonArray.map { it.jsonObject["id"]!!.jsonPrimitive.content }.toSet() shouldBe
                        setOf("bad-1", "bad-bulk-0", "bad-bulk-1", "bad-bulk-2")
                }
                stent("runs", "list", "--workflow", "greet", "--since", "1h", "--limit", "1", *db.args).let { r ->
                    withClue(r) { r.out.lines().filter { it.startsWith("ok-1 ") }.size shouldBe 1 }
                }

                val show = stent("runs", "show", "bad-1", *db.args)
                withClue(show) {
                    show.code shouldBe 0
                    show.out shouldContain "java.lang.IllegalStateException: boom ?[2J" // printed, not obeyed
                    show.out shouldNotContain "\u001b"
                    show.out shouldContain "at " // the stack
                    show.out.lines().single { it.trimStart().startsWith("+") && " boom " in it } shouldContain "FAILED"
                }
                val shown = stent("runs", "show", "ok-1", "--json", *db.args)
                withClue(shown) {
                    val run = Json.parseToJsonElement(shown.out).jsonObject
                    run["output"]!!.jsonPrimitive.content shouldBe "hello ana"
                    (run["records"] as JsonArray).map { it.jsonObject["id"]!!.jsonPrimitive.content } shouldBe listOf("hello")
                }
                val exported = stent("runs", "history", "ok-1", *db.args)
                withClue(exported) {
                    val history = dev.stent.RunHistory.fromJson(exported.out)
                    history.workflowName shouldBe "greet"
                    history.records.map { it.id } shouldBe listOf("hello")
                    dev.stent.WorkflowReplayer.check(greet, history).isOk shouldBe true
                }
                val file = Files.createTempDirectory("stent-history").resolve("ok-1.json")
                stent("runs", "history", "ok-1", "--out", file.toString(), *db.args).code shouldBe 0
                dev.stent.RunHistory.read(file).runId shouldBe "ok-1"
                stent("runs", "show", "nope", *db.args).let { r ->
                    withClue(r) {
                        r.code shouldBe ExitCodes.NOT_FOUND
                        r.err shouldContain "no run with id 'nope'"
                    }
                }

                stent("runs", "signal", "wait-1", "go", "\"yes\"", *db.args).let { r -> withClue(r) { r.code shouldBe 0 } }
                stent.client.handle("wait-1", codecOf<String>()).await(30.seconds) shouldBe "yes"
                stent("runs", "signal", "wait-1", "go", "{not json", *db.args).code shouldBe ExitCodes.USAGE

                stent("dead-letters", "list", *db.args).let { r -> withClue(r) { r.out shouldContain "bad-1" } }
                stent("dead-letters", "retry", "bad-1", *db.args).let { r -> withClue(r) { r.out shouldContain "bad-1: now PENDING" } }
                for (i in 1..300) {
                    val again = stent.client.describe("bad-1")
                    if (again.retries == 1 && again.status == RunStatus.FAILED) break // it failed again
                    delay(50.milliseconds)
                }
                val discard = stent("dead-letters", "discard", "--all", "--workflow", "broken", *db.args)
                withClue(discard) {
                    discard.code shouldBe 0
                    discard.err shouldContain "discarded 4/4" // progress of the bulk operation
                    discard.out.lines().filter { it.startsWith("bad-") && "discarded" in it }.size shouldBe 4
                }
                stent("dead-letters", "list", "--json", *db.args).let { r ->
                    withClue(r) {
                        Json.parseToJsonElement(r.out).jsonArray.map { it.jsonObject["id"]!!.jsonPrimitive.content } shouldNotContainAny listOf("bad-bulk-0")
                    }
                }

                stent("runs", "delete", "ok-1", *db.args).let { r -> withClue(r) { r.code shouldBe 0 } }
                stent("runs", "show", "ok-1", *db.args).code shouldBe ExitCodes.NOT_FOUND
                stent("runs", "delete", "pend-1", *db.args).let { r ->
                    withClue(r) {
                        r.code shouldBe ExitCodes.FAILED
                        r.err shouldContain "not finished"
                    }
                }
                stent("runs", "cancel", "pend-1", *db.args).let { r -> withClue(r) { r.out shouldContain "pend-1: now CANCELLED" } }
                // a no-op says so, and the exit code too
                stent("runs", "retry", "pend-1", *db.args).let { r ->
                    withClue(r) {
                        r.code shouldBe ExitCodes.FAILED
                        r.out shouldContain "not retried: it is CANCELLED"
                    }
                }
                // --all on runs needs a filter: it would otherwise act on every run
                stent("runs", "delete", "--all", *db.args).let { r ->
                    withClue(r) {
                        r.code shouldBe ExitCodes.USAGE
                        r.err shouldContain "needs at least one filter"
                    }
                }

                val stats = stent("stats", "--json", *db.args)
                withClue(stats) {
                    val s = Json.parseToJsonElement(stats.out).jsonObject
                    s["byStatus"]!!.jsonObject["RUNNING"]!!.jsonPrimitive.long shouldBe 1
                    s["byWorkflow"]!!.jsonObject.keys shouldContainAll listOf("broken", "waiter", "blocker", "orphan")
                }
                stent("stats", *db.args).let { r -> withClue(r) { r.out shouldContain "finished:" } }

                val watch = stent("watch", "--count", "2", "--interval", "200ms", *db.args)
                withClue(watch) {
                    watch.code shouldBe 0
                    watch.out.lines().single { "  run-1  " in it } shouldContain "RUNNING"
                }
                stent("schedules", "list", *db.args).let { r -> withClue(r) { r.out.lines().single { it.startsWith("nightly ") } shouldContain "0 3 * * *" } }
                stent("schedules", "pause", "nightly", *db.args).code shouldBe 0
                stent("schedules", "pause", "weekly", *db.args).code shouldBe ExitCodes.NOT_FOUND
                stent("queues", "limit", "payments", "--concurrency", "2", "--rate", "20/1s", *db.args).code shouldBe 0
                stent("queues", "list", "--json", *db.args).let { r ->
                    withClue(r) {
                        val q = Json.parseToJsonElement(r.out).jsonArray.single { it.jsonObject["queue"]!!.jsonPrimitive.content == "payments" }.jsonObject
                        q["concurrency"]!!.jsonPrimitive.long shouldBe 2
                        q["rateLimit"]!!.jsonPrimitive.long shouldBe 20
                    }
                }
                release.countDown()
            }
        }
    }
})

class SqliteCliIT : CliSuite({ SqliteFixture() })

class PostgresCliIT : CliSuite({ PostgresFixture() })

class CliErrorsIT : FunSpec({
    test("a wrong URL, a database without Stent tables, a missing option: a clear message and an exit code scripts rely on") {
        stent("runs", "list").let { r ->
            withClue(r) {
                r.code shouldBe ExitCodes.USAGE
                r.err shouldContain "no database"
            }
        }
        stent("runs", "list", "--db", "jdbc:sqlite:/nonexistent/stent.db").let { r ->
            withClue(r) {
                r.code shouldBe ExitCodes.UNREACHABLE
                r.err shouldContain "no SQLite file at '/nonexistent/stent.db'"
            }
        }
        stent("runs", "list", "--db", "jdbc:mysql://localhost/x").let { r -> withClue(r) { r.code shouldBe ExitCodes.UNREACHABLE } }
        stent("runs", "list", "--db", "jdbc:postgresql://localhost:1/none").let { r -> withClue(r) { r.code shouldBe ExitCodes.UNREACHABLE } }
        // a SQLite file of another application: left as it was
        val other = Files.createTempDirectory("stent-cli").resolve("other.db").toFile()
        java.sql.DriverManager.getConnection("jdbc:sqlite:${other.path}").use { it.createStatement().execute("CREATE TABLE orders (id INTEGER)") }
        stent("stats", "--db", "jdbc:sqlite:${other.path}").let { r ->
            withClue(r) {
                r.code shouldBe ExitCodes.NO_SCHEMA
                r.err shouldContain "no Stent tables"
            }
        }
        java.sql.DriverManager.getConnection("jdbc:sqlite:${other.path}").use { c ->
            c.metaData.getTables(null, null, "stent_%", null).use { it.next() } shouldBe false
            c.createStatement().executeQuery("PRAGMA journal_mode").use { it.next(); it.getString(1) } shouldBe "delete" // not switched to WAL
        }
        // the environment names the database too
        val empty = Files.createTempDirectory("stent-cli").resolve("stent.db").toString()
        Stents.sqlite(empty).close()
        stent("runs", "list", env = mapOf("STENT_DB" to "jdbc:sqlite:$empty")).let { r -> withClue(r) { r.code shouldBe 0 } }
        stent("runs", "list", "--db", "jdbc:sqlite:$empty", "--since", "yesterday").code shouldBe ExitCodes.USAGE
        // `stent dashboard` serves the pages until it is stopped
        val jar = File("target").listFiles { f -> f.name.endsWith("-all.jar") }!!.single()
        val log = Files.createTempFile("stent-dashboard", ".err").toFile()
        val javaBin = File(System.getProperty("java.home"), "bin/java").path
        val served = ProcessBuilder(javaBin, "-jar", jar.path, "dashboard", "--port", "0", "--db", "jdbc:sqlite:$empty")
            .redirectErrorStream(true).redirectOutput(log).start()
        try {
            var url: String? = null
            for (i in 1..600) {
                url = Regex("stent dashboard at (http://\\S+)").find(log.readText())?.groupValues?.get(1)
                if (url != null || !served.isAlive) break
                Thread.sleep(50)
            }
            withClue(log.readText()) {
                val page = java.net.http.HttpClient.newHttpClient()
                    .send(java.net.http.HttpRequest.newBuilder(java.net.URI(url!!)).build(), java.net.http.HttpResponse.BodyHandlers.ofString())
                page.statusCode() shouldBe 200
                page.body() shouldContain "<table id=\"runs\">"
            }
        } finally {
            served.destroy()
            served.waitFor(30, TimeUnit.SECONDS)
        }
        stent("frobnicate").code shouldBe ExitCodes.USAGE
        stent("--help").let { r -> withClue(r) { r.out shouldContain "Exit codes:" } }
        stent("runs", "list", "--db", "jdbc:sqlite:$empty", "--limit", "0").let { r ->
            withClue(r) {
                r.code shouldBe ExitCodes.USAGE
                r.err shouldNotContain "Exception"
            }
        }
    }
})

private infix fun List<String>.shouldNotContainAny(others: List<String>) = others.forEach { o -> withClue("$this contains $o") { (o in this) shouldBe false } }
