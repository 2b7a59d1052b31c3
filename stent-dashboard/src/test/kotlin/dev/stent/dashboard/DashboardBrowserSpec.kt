package dev.stent.dashboard

import dev.stent.RunStatus
import dev.stent.codecOf
import dev.stent.exposed.Stents
import dev.stent.retryPolicy
import dev.stent.stentWorker
import dev.stent.step
import dev.stent.workflow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldContain
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import kotlinx.coroutines.delay
import org.openqa.selenium.By
import org.openqa.selenium.OutputType
import org.openqa.selenium.TakesScreenshot
import org.openqa.selenium.WebDriver
import org.openqa.selenium.chrome.ChromeDriver
import org.openqa.selenium.chrome.ChromeDriverService
import org.openqa.selenium.chrome.ChromeOptions
import org.openqa.selenium.support.ui.Select
import org.openqa.selenium.support.ui.WebDriverWait
import java.io.File
import java.nio.file.Files
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * Headless Chromium (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs) against
 * a dashboard with runs in every state: list → run → retry, a signal sent from the page, a run that
 * appears without a reload. Screenshots go to `target/screenshots/` (and, with
 * `-Dstent.docs.write=true`, to `docs/images/`, where the dashboard page shows them).
 */
class DashboardBrowserSpec : FunSpec({
    fun browser(): WebDriver {
        val chromium = listOf(System.getenv("CHROME_BIN"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
            .firstOrNull { it != null && File(it).canExecute() }
            ?: error("no Chromium: install Debian's chromium and chromium-driver (.ci/run does), or set CHROME_BIN")
        val driver = listOf(System.getenv("CHROMEDRIVER"), "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
            .firstOrNull { it != null && File(it).canExecute() }
            ?: error("no chromedriver: install Debian's chromium-driver (.ci/run does), or set CHROMEDRIVER")
        val options = ChromeOptions().setBinary(chromium)
            .addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,900", "--disable-gpu")
        return ChromeDriver(ChromeDriverService.Builder().usingDriverExecutable(File(driver)).build(), options)
    }

    fun WebDriver.shot(name: String) {
        val png = (this as TakesScreenshot).getScreenshotAs(OutputType.BYTES)
        File("target/screenshots").apply { mkdirs() }.resolve("$name.png").writeBytes(png)
        if (System.getProperty("stent.docs.write") == "true") {
            File(System.getProperty("stent.root") ?: "..", "docs/images").apply { mkdirs() }.resolve("dashboard-$name.png").writeBytes(png)
        }
    }

    fun WebDriver.waitUntil(what: String, condition: () -> Boolean) {
        try {
            WebDriverWait(this, java.time.Duration.ofSeconds(30)).withMessage(what).until { condition() }
        } catch (e: org.openqa.selenium.TimeoutException) {
            shot("failed-wait")
            throw AssertionError("$what: timed out on ${this.currentUrl}:\n${this.pageSource?.take(3000)}", e)
        }
    }

    test("a person clicks through the run list, a failed run and its retry, sends a signal, and sees new runs appear") {
        val fixed = AtomicBoolean(false)
        Stents.sqlite(Files.createTempDirectory("stent-dashboard").resolve("stent.db").toString()).use { stent ->
            val order = workflow<String, String>("order", { retryPolicy = retryPolicy { initialDelay = 100.milliseconds } }) { id ->
                val tries = java.util.concurrent.atomic.AtomicInteger()
                step("reserve") { delay(120.milliseconds); "reserved" }
                step("charge") {
                    delay(80.milliseconds)
                    check(tries.incrementAndGet() > 1) { "card declined, try again" }
                    "charged"
                }
                sleep(400.milliseconds)
                step("ship") { delay(150.milliseconds); "shipped $id" }
            }
            val payment = workflow<String, String>("payment", { retryPolicy = retryPolicy { maxAttempts = 1 } }) { _ ->
                step("authorize") { delay(50.milliseconds); "auth" }
                step("capture") {
                    check(fixed.get()) { "gateway timeout" }
                    "captured"
                }
            }
            val approval = workflow<String, String>("approval") { _ -> awaitSignal("go", codecOf<String>()) }
            val orphan = workflow<String, String>("report") { it } // no worker serves it: PENDING
            stentWorker(stent) {
                listOf(order, payment, approval).forEach { register(it) }
                pollInterval = 50.milliseconds
            }.use {
                stent.client.start(order, "o-1", id = "order-1").await(30.seconds)
                (2..6).map { stent.client.start(order, "o-$it", id = "order-$it") }.forEach { it.await(30.seconds) }
                stent.client.start(payment, "", id = "pay-1")
                stent.client.start(approval, "", id = "approve-1")
                stent.client.start(orphan, "", id = "report-1")
                for (i in 1..200) {
                    if (stent.client.describe("pay-1").status == RunStatus.FAILED && stent.client.describe("approve-1").status == RunStatus.WAITING) break
                    delay(50.milliseconds)
                }
                StentDashboard.start(stent, port = 0).use { dashboard ->
                    val web = browser()
                    try {
                        web.get(dashboard.url)
                        val ids = web.findElements(By.cssSelector("#runs tbody tr")).map { it.getAttribute("data-run") }
                        ids shouldContain "order-1"
                        ids shouldContain "report-1"
                        web.findElement(By.cssSelector("tr[data-run='order-1']")).text shouldContain "COMPLETED"
                        web.shot("list")

                        // filter: failed runs only
                        Select(web.findElement(By.id("status"))).selectByVisibleText("FAILED")
                        web.findElement(By.id("filter")).click()
                        web.waitUntil("the list shows failed runs only") {
                            web.findElements(By.cssSelector("#runs tbody tr")).map { it.getAttribute("data-run") } == listOf("pay-1")
                        }

                        // the failed run: its failure, with the stack, and its timeline
                        web.findElement(By.linkText("pay-1")).click()
                        web.waitUntil("the run page") { web.findElements(By.id("failure")).isNotEmpty() }
                        web.findElement(By.id("failure")).text shouldContain "gateway timeout"
                        web.findElement(By.id("failure")).text shouldContain "at " // the stack
                        val records = web.findElements(By.cssSelector("#timeline tr[data-record]")).map { it.getAttribute("data-record") }
                        records shouldBe listOf("authorize", "capture")
                        web.shot("run-failed")

                        // fix the cause, then retry from the page
                        fixed.set(true)
                        web.findElement(By.id("retry")).click()
                        web.waitUntil("the retry is acknowledged") { web.findElements(By.id("msg")).any { "retried" in it.text } }
                        web.waitUntil("the retried run completes") {
                            web.navigate().refresh()
                            web.findElement(By.tagName("h2")).text.contains("COMPLETED")
                        }
                        web.findElement(By.id("output")).text shouldContain "captured"

                        // a signal sent from the page
                        web.get(dashboard.url + "runs/approve-1")
                        web.findElement(By.id("signal-name")).sendKeys("go")
                        web.findElement(By.id("signal-payload")).sendKeys("\"approved by ana\"")
                        web.findElement(By.id("signal")).click()
                        web.waitUntil("the signal is acknowledged") { web.findElements(By.id("msg")).any { "signal 'go' sent" in it.text } }
                        stent.client.handle("approve-1", codecOf<String>()).await(30.seconds) shouldBe "approved by ana"

                        // the timeline of a run with a retry and a sleep
                        web.get(dashboard.url + "runs/order-1")
                        web.findElements(By.cssSelector("#timeline tr[data-record]")).map { it.getAttribute("data-record") } shouldContain "sleep#1"
                        web.findElement(By.cssSelector("#timeline tr[data-record='sleep#1']")).text shouldContain "slept"
                        web.shot("run-timeline")

                        // the list updates itself: a run started now appears without a reload
                        web.get(dashboard.url)
                        stent.client.start(orphan, "", id = "report-2")
                        web.waitUntil("the new run appears") { web.findElements(By.cssSelector("tr[data-run='report-2']")).isNotEmpty() }
                    } finally {
                        web.quit()
                    }
                }
            }
        }
    }
})
