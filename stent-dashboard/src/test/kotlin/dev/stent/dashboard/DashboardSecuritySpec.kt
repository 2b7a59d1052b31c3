package dev.stent.dashboard

import dev.stent.RunStatus
import dev.stent.StentConfigurationException
import dev.stent.exposed.Stents
import dev.stent.workflow
import io.kotest.assertions.throwables.shouldThrow
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files

/** The status line of a GET / with this Host header (the JDK's HttpClient will not send a Host of its own). */
private fun rawGet(port: Int, host: String, path: String = "/"): String = java.net.Socket("127.0.0.1", port).use { s ->
    s.getOutputStream().write("GET $path HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n".toByteArray())
    s.getInputStream().bufferedReader().readLine()
}

class DashboardSecuritySpec : FunSpec({
    val http = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).build()

    fun get(url: String, cookie: String? = null): HttpResponse<String> =
        http.send(HttpRequest.newBuilder(URI(url)).apply { cookie?.let { header("Cookie", it) } }.build(), HttpResponse.BodyHandlers.ofString())

    fun post(url: String, form: String, vararg headers: String): HttpResponse<String> = http.send(
        HttpRequest.newBuilder(URI(url)).header("Content-Type", "application/x-www-form-urlencoded")
            .apply { headers.toList().chunked(2).forEach { (k, v) -> header(k, v) } }
            .POST(HttpRequest.BodyPublishers.ofString(form)).build(),
        HttpResponse.BodyHandlers.ofString(),
    )

    test("off loopback it needs a token; with one, nothing is shown without it") {
        Stents.sqlite(Files.createTempDirectory("stent-dash").resolve("stent.db").toString()).use { stent ->
            shouldThrow<StentConfigurationException> { StentDashboard.start(stent, 0, "0.0.0.0") }.message shouldContain "needs a token"
            shouldThrow<StentConfigurationException> { StentDashboard.start(stent, 0, token = "short") }.message shouldContain "16 characters"
            shouldThrow<StentConfigurationException> { StentDashboard.start(stent, -1) }
            shouldThrow<StentConfigurationException> { StentDashboard.start(stent, 70_000) }
            val token = "a-long-enough-secret-token"
            StentDashboard.start(stent, 0, token = token).use { d ->
                get(d.url).statusCode() shouldBe 401
                get(d.url + "?token=wrong-wrong-wrong-wrong").statusCode() shouldBe 401
                val granted = get(d.url + "?token=$token&status=FAILED")
                granted.statusCode() shouldBe 303
                granted.headers().firstValue("Location").get() shouldBe "/?status=FAILED" // the token leaves the address, the rest stays
                val cookie = granted.headers().firstValue("Set-Cookie").get().substringBefore(';')
                cookie.substringBefore('=') shouldBe "stent_session_${d.port}" // cookies ignore ports: one name per dashboard
                (token in cookie) shouldBe false // a digest, never the token
                get("http://127.0.0.1:${d.port}////evil.example/x?token=$token").headers().firstValue("Location").get() shouldBe "/evil.example/x"
                get(d.url, cookie).statusCode() shouldBe 200
                get(d.url + "runs/nope", cookie).statusCode() shouldBe 404
            }
        }
    }

    test("an action without the page's anti-forgery token, or from another site, is refused and changes nothing") {
        Stents.sqlite(Files.createTempDirectory("stent-dash").resolve("stent.db").toString()).use { stent ->
            val idle = workflow<String, String>("idle") { it }
            stent.client.start(idle, "", id = "r-1") // no worker: PENDING
            StentDashboard.start(stent, 0).use { d ->
                val page = get(d.url + "runs/r-1")
                page.statusCode() shouldBe 200
                val csrf = Regex("""name="csrf" value="([^"]+)"""").find(page.body())!!.groupValues[1]
                post(d.url + "runs/r-1/cancel", "").statusCode() shouldBe 403
                post(d.url + "runs/r-1/cancel", "csrf=forged").statusCode() shouldBe 403
                post(d.url + "runs/r-1/cancel", "csrf=$csrf", "Origin", "https://evil.example").statusCode() shouldBe 403
                stent.client.describe("r-1").status shouldBe RunStatus.PENDING
                val done = post(d.url + "runs/r-1/cancel", "csrf=$csrf")
                done.statusCode() shouldBe 303
                done.headers().firstValue("Location").get() shouldContain "/runs/r-1?flash="
                stent.client.describe("r-1").status shouldBe RunStatus.CANCELLED
                // an id with a slash and a space survives the round trip through the address
                stent.client.start(idle, "", id = "a/b c")
                get(d.url + "runs/" + Pages.enc("a/b c")).body() shouldContain "a/b c"
                get(d.url + "?status=PENDING").body() shouldContain Pages.esc("/runs/" + Pages.enc("a/b c"))
                // a page may show only the messages the dashboard left: a crafted link shows nothing
                get(d.url + "runs/r-1?flash=Approved%20by%20security").body().contains("Approved by security") shouldBe false
                // DNS rebinding: a page of another name that resolves to 127.0.0.1 gets nothing
                rawGet(d.port, "evil.example") shouldContain " 421 "
                rawGet(d.port, "localhost:${d.port}") shouldContain " 200 "
                // methods other than GET and POST, and malformed escapes
                val delete = HttpRequest.newBuilder(URI(d.url)).method("DELETE", HttpRequest.BodyPublishers.noBody()).build()
                http.send(delete, HttpResponse.BodyHandlers.ofString()).statusCode() shouldBe 405
                rawGet(d.port, "127.0.0.1:${d.port}", "/runs/%zz") shouldContain " 400 "
            }
        }
    }
})
