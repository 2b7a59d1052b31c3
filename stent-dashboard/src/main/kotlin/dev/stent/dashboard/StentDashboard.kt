package dev.stent.dashboard

import com.sun.net.httpserver.HttpExchange
import com.sun.net.httpserver.HttpServer
import dev.stent.Stent
import dev.stent.StentConfigurationException
import dev.stent.StentException
import dev.stent.UnknownRunException
import kotlinx.coroutines.runBlocking
import org.slf4j.LoggerFactory
import java.net.InetAddress
import java.net.InetSocketAddress
import java.security.MessageDigest
import java.security.SecureRandom
import java.util.Base64
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

/**
 * A web dashboard of [Stent]'s runs, served by the JDK's own HTTP server (no dependency): a run list
 * with filters that updates itself, a run page with the records as a timeline, the failure with its
 * stack, the input and output, and actions (signal, cancel, retry, delete).
 *
 * Start it with [start]; [close] stops it within a second. It binds to the loopback address unless
 * told otherwise, and off loopback it requires a [token] (open `url?token=…` once; a cookie keeps it).
 * Every action is a POST that carries the page's anti-forgery token, so another site cannot trigger one.
 */
public class StentDashboard private constructor(
    private val stent: Stent,
    private val server: HttpServer,
    private val executor: ExecutorService,
    private val token: String?,
) : AutoCloseable {
    /** Where it listens, e.g. `http://127.0.0.1:8080/`. */
    public val url: String = "http://${hostText(server.address.address)}:${server.address.port}/"

    /** The port it listens on (useful after starting it on port 0). */
    public val port: Int get() = server.address.port

    // the anti-forgery token of every form this server renders: only its own pages can read it
    private val csrf: String = randomToken()
    private val pages = Pages(stent, csrf)

    // what the browser keeps once it gave the token: a digest, in a cookie named for this port (cookies ignore ports)
    private val session: String = token?.let { digest("stent-dashboard:$it") } ?: ""
    private val cookieName: String get() = "stent_session_${server.address.port}"

    private fun handle(exchange: HttpExchange) {
        exchange.use {
            try {
                if (!authorized(exchange)) return
                route(exchange)
            } catch (e: Exception) {
                log.warn("stent dashboard: {} {} failed: {}", exchange.requestMethod, exchange.requestURI, e.toString())
                respond(exchange, 500, pages.error("Something went wrong", e.message ?: e.toString()))
            }
        }
    }

    private fun authorized(exchange: HttpExchange): Boolean {
        val expected = token ?: return loopbackHost(exchange)
        val query = Pages.query(exchange.requestURI.rawQuery)
        query["token"]?.let { given ->
            if (!sameSecret(given, expected)) return respond(exchange, 401, pages.error("Unauthorized", "the token is wrong")).let { false }
            // a cookie keeps a digest of it (never the token itself), and the address bar drops it
            exchange.responseHeaders.add("Set-Cookie", "$cookieName=$session; Path=/; HttpOnly; SameSite=Lax")
            val rest = query.filterKeys { it != "token" }.entries.joinToString("&") { "${Pages.enc(it.key)}=${Pages.enc(it.value)}" }
            exchange.responseHeaders.add("Location", "/" + exchange.requestURI.rawPath.trimStart('/') + (if (rest.isEmpty()) "" else "?$rest"))
            respond(exchange, 303, "")
            return false
        }
        val cookie = exchange.requestHeaders["Cookie"].orEmpty().flatMap { it.split(';') }.map { it.trim() }
            .firstOrNull { it.startsWith("$cookieName=") }?.substringAfter('=')
        if (cookie != null && sameSecret(cookie, session)) return true
        respond(exchange, 401, pages.error("Unauthorized", "open the dashboard's address with ?token=… once"))
        return false
    }

    /**
     * Without a token only a loopback name may be asked for: a site whose name an attacker re-points at
     * 127.0.0.1 (DNS rebinding) would otherwise be same-origin with the dashboard in the victim's browser.
     */
    private fun loopbackHost(exchange: HttpExchange): Boolean {
        val host = exchange.requestHeaders.getFirst("Host")?.substringBeforeLast(':')?.removePrefix("[")?.removeSuffix("]")?.lowercase()
        if (host in LOOPBACK_NAMES) return true
        respond(exchange, 421, pages.error("Misdirected request", "this dashboard answers only to localhost, 127.0.0.1 and [::1]"))
        return false
    }

    private fun route(exchange: HttpExchange) {
        val method = exchange.requestMethod
        if (method != "GET" && method != "POST") {
            exchange.responseHeaders.add("Allow", "GET, POST")
            return respond(exchange, 405, "")
        }
        val path = exchange.requestURI.rawPath
        val (query, parts) = try {
            Pages.query(exchange.requestURI.rawQuery) to path.trim('/').split('/').filter { it.isNotEmpty() }.map(Pages::dec)
        } catch (e: IllegalArgumentException) {
            return respond(exchange, 400, pages.error("Bad request", "the address is not well encoded"))
        }
        when {
            method == "GET" && parts.isEmpty() -> respond(exchange, 200, runBlocking { pages.list(query) })
            method == "GET" && parts == listOf("fragment", "runs") -> respond(exchange, 200, runBlocking { pages.rows(query) })
            method == "GET" && parts.size == 2 && parts[0] == "runs" -> {
                val html = try {
                    runBlocking { pages.run(parts[1], query["flash"]) }
                } catch (e: UnknownRunException) {
                    return respond(exchange, 404, pages.error("No such run", e.message ?: ""))
                }
                respond(exchange, 200, html)
            }
            method == "POST" && parts.size == 3 && parts[0] == "runs" -> act(exchange, parts[1], parts[2])
            else -> respond(exchange, 404, pages.error("Not found", "no page at $path"))
        }
    }

    private fun act(exchange: HttpExchange, runId: String, action: String) {
        val body = exchange.requestBody.readNBytes(MAX_FORM + 1)
        if (body.size > MAX_FORM) return respond(exchange, 413, pages.error("Too large", "a form of the dashboard is at most ${MAX_FORM / 1024} KiB"))
        val form = try {
            Pages.query(body.toString(Charsets.UTF_8))
        } catch (e: IllegalArgumentException) {
            return respond(exchange, 400, pages.error("Bad request", "the form is not well encoded"))
        }
        // a form of this server's own pages carries its token; a cross-site request cannot read it
        if (!sameSecret(form["csrf"] ?: "", csrf) || crossSite(exchange)) {
            return respond(exchange, 403, pages.error("Forbidden", "this action did not come from the dashboard's own page; reload it and try again"))
        }
        val message = try {
            runBlocking { pages.act(runId, action, form) }
        } catch (e: StentException) {
            "failed: ${e.message}"
        }
        // the message stays here; the address names it, so a crafted link cannot make the page say something else
        val flash = pages.flash(message)
        val back = if (action == "delete" && !message.startsWith("failed")) "/?flash=" else "/runs/${Pages.enc(runId)}?flash="
        exchange.responseHeaders.add("Location", back + flash)
        respond(exchange, 303, "")
    }

    /** A browser says where a request comes from (Sec-Fetch-Site); without that header, its Origin must be this host. */
    private fun crossSite(exchange: HttpExchange): Boolean {
        exchange.requestHeaders.getFirst("Sec-Fetch-Site")?.let { site -> return site != "same-origin" && site != "none" }
        val origin = exchange.requestHeaders.getFirst("Origin") ?: return false
        val host = exchange.requestHeaders.getFirst("Host") ?: return true
        return origin.substringAfter("://") != host
    }

    private fun respond(exchange: HttpExchange, status: Int, body: String) {
        val bytes = body.toByteArray(Charsets.UTF_8)
        with(exchange.responseHeaders) {
            if (body.isNotEmpty()) add("Content-Type", "text/html; charset=utf-8")
            add("Cache-Control", "no-store")
            add("X-Content-Type-Options", "nosniff")
            add("X-Frame-Options", "DENY")
            add(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; " +
                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            )
            add("Referrer-Policy", "same-origin") // "no-referrer" would make a browser send "Origin: null" with the page's own forms
        }
        exchange.sendResponseHeaders(status, if (bytes.isEmpty()) -1 else bytes.size.toLong())
        if (bytes.isNotEmpty()) exchange.responseBody.write(bytes)
    }

    /** Stops listening, and waits at most a second for the requests in progress. */
    override fun close() {
        server.stop(0)
        executor.shutdown()
        if (!executor.awaitTermination(1, TimeUnit.SECONDS)) executor.shutdownNow()
    }

    public companion object {
        private val log = LoggerFactory.getLogger("dev.stent.dashboard")
        private val LOOPBACK_NAMES = setOf("localhost", "127.0.0.1", "::1")
        private const val MAX_FORM = 1 shl 20

        /**
         * Serves the dashboard of [stent] on [host]:[port] (port 0: any free port; see [url]). [host] is
         * the loopback address unless given; any other address needs a [token] of at least 16 characters.
         */
        @JvmStatic
        @JvmOverloads
        public fun start(stent: Stent, port: Int = 8080, host: String = "127.0.0.1", token: String? = null): StentDashboard {
            if (port !in 0..65535) throw StentConfigurationException("dashboard: port must be within 0..65535, was $port")
            val address = try {
                InetAddress.getByName(host)
            } catch (e: Exception) {
                throw StentConfigurationException("dashboard: cannot resolve host '$host': ${e.message}")
            }
            if (token != null && token.length < 16) throw StentConfigurationException("dashboard: the token must have at least 16 characters")
            if (!address.isLoopbackAddress && token == null) {
                throw StentConfigurationException(
                    "dashboard: '$host' is reachable from other machines, so the dashboard needs a token: " +
                        "start(stent, port, host, token) (its actions change runs)",
                )
            }
            val server = try {
                HttpServer.create(InetSocketAddress(address, port), 0)
            } catch (e: java.io.IOException) {
                throw StentConfigurationException("dashboard: cannot listen on $host:$port: ${e.message}")
            }
            val executor = Executors.newFixedThreadPool(4) { r -> Thread(r, "stent-dashboard").apply { isDaemon = true } }
            server.executor = executor
            val dashboard = StentDashboard(stent, server, executor, token)
            server.createContext("/") { dashboard.handle(it) }
            server.start()
            log.info("stent dashboard at {}", dashboard.url)
            return dashboard
        }

        private fun randomToken(): String = Base64.getUrlEncoder().withoutPadding().encodeToString(ByteArray(24).also(SecureRandom()::nextBytes))

        private fun sameSecret(a: String, b: String) = MessageDigest.isEqual(a.toByteArray(), b.toByteArray())

        private fun digest(text: String): String =
            Base64.getUrlEncoder().withoutPadding().encodeToString(MessageDigest.getInstance("SHA-256").digest(text.toByteArray()))

        private fun hostText(a: InetAddress) = if (a is java.net.Inet6Address) "[${a.hostAddress}]" else a.hostAddress
    }
}
