package dev.stent.dashboard

import dev.stent.Codecs
import dev.stent.Failure
import dev.stent.RunInfo
import dev.stent.RunStatus
import dev.stent.Stent
import dev.stent.StentStats
import kotlinx.coroutines.sync.withLock
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonElement
import java.net.URLDecoder
import java.net.URLEncoder
import java.time.Duration
import java.time.Instant
import java.util.Locale

/** The dashboard's HTML: rendered on the server, with a few lines of script for live updates and no build chain. */
internal class Pages(private val stent: Stent, private val csrf: String) {
    private val client get() = stent.client

    // the messages actions leave for the page they redirect to, by a random key (at most the last 200)
    private val flashes = object : LinkedHashMap<String, String>() {
        override fun removeEldestEntry(eldest: MutableMap.MutableEntry<String, String>?) = size > 200
    }

    fun flash(message: String): String {
        val key = java.util.UUID.randomUUID().toString()
        synchronized(flashes) { flashes[key] = message }
        return key
    }

    private fun flashed(key: String?): String? = key?.let { synchronized(flashes) { flashes[it] } }

    // the counts: one grouped scan of the runs, so read at most every 10 s however many pages poll
    @Volatile
    private var counted: Pair<Long, StentStats?>? = null
    private val counting = kotlinx.coroutines.sync.Mutex()

    private suspend fun stats(): StentStats? {
        counted?.takeIf { System.nanoTime() - it.first < STATS_EVERY_NANOS }?.let { return it.second }
        return counting.withLock {
            counted?.takeIf { System.nanoTime() - it.first < STATS_EVERY_NANOS }?.let { return@withLock it.second }
            // a store that cannot count runs still lists them
            val s = try {
                client.stats()
            } catch (e: UnsupportedOperationException) {
                null
            }
            counted = System.nanoTime() to s
            s
        }
    }

    /** The run list: filters, counts by status, a page of runs (the newest, or those after `before`), refreshed every 2 s. */
    suspend fun list(query: Map<String, String>): String = page("Runs") {
        val status = query["status"].orEmpty().uppercase()
        flashed(query["flash"])?.let { append("""<p class="msg" id="msg">${esc(it)}</p>""") }
        append("""<form class="filters" method="get" action="/">""")
        append("""<label>Status <select name="status" id="status"><option value="">any</option>""")
        RunStatus.entries.forEach { s -> append("""<option${if (s.name == status) " selected" else ""}>${s.name}</option>""") }
        append("</select></label>")
        append("""<label>Workflow <input name="workflow" id="workflow" value="${esc(query["workflow"].orEmpty())}"></label>""")
        append("""<label>Queue <input name="queue" id="queue" value="${esc(query["queue"].orEmpty())}"></label>""")
        append("""<button type="submit" id="filter">Filter</button> <a href="/">clear</a></form>""")
        append("""<div id="live">""").append(rows(query)).append("</div>")
        // refresh the first page (not one the user paged to), when the tab is visible, one request at a time
        if (query["before"] == null) {
            append(
                """<script>
                |async function refresh() {
                |  if (!document.hidden) {
                |    try {
                |      const r = await fetch('/fragment/runs' + location.search, {credentials: 'same-origin'});
                |      if (r.ok) document.getElementById('live').innerHTML = await r.text();
                |    } catch (e) {}
                |  }
                |  setTimeout(refresh, 2000);
                |}
                |setTimeout(refresh, 2000);
                |</script>
                """.trimMargin(),
            )
        }
    }

    /** The part of the list page that refreshes: counts and the page of runs. */
    suspend fun rows(query: Map<String, String>): String = buildString {
        val status = query["status"]?.takeIf { it.isNotBlank() }?.let { s -> RunStatus.entries.firstOrNull { it.name == s.uppercase() } }
        val (beforeMs, beforeId) = query["before"]?.split('_', limit = 2)?.takeIf { it.size == 2 }?.let { it[0].toLongOrNull() to it[1] } ?: (null to null)
        val runs = client.list(
            status, query["workflow"]?.takeIf { it.isNotBlank() }, PAGE, 0, queue = query["queue"]?.takeIf { it.isNotBlank() },
            createdBefore = beforeMs?.let(Instant::ofEpochMilli), beforeId = beforeId,
        )
        stats()?.let { stats ->
            append("""<p class="counts">""")
            RunStatus.entries.forEach { s -> append("""<span class="badge ${s.name.lowercase()}">${s.name} ${stats.byStatus[s] ?: 0}</span> """) }
            append("""<span class="muted">${stats.finishedLastMinute} finished in the last minute (counted at ${time(stats.at)})</span></p>""")
        }
        append("""<table id="runs"><thead><tr><th>Run</th><th>Workflow</th><th>Status</th><th>Queue</th><th>Created</th><th>Finished</th></tr></thead>""")
        append("<tbody>")
        for (r in runs) {
            append("""<tr data-run="${esc(r.id)}"><td><a href="/runs/${enc(r.id)}">${esc(r.id)}</a></td><td>${esc(r.workflowName)}</td>""")
            append("""<td>${badge(r)}</td><td>${esc(r.queue)}</td><td>${time(r.createdAt)}</td><td>${r.finishedAt?.let(::time) ?: ""}</td></tr>""")
        }
        if (runs.isEmpty()) append("""<tr><td colspan="6" class="muted">no run matches</td></tr>""")
        append("</tbody></table>")
        if (runs.size == PAGE) {
            val last = runs.last()
            val rest = query.filterKeys { it != "before" && it != "flash" } + ("before" to "${last.createdAt.toEpochMilli()}_${last.id}")
            val href = "/?" + rest.entries.joinToString("&") { "${enc(it.key)}=${enc(it.value)}" }
            append("""<p><a id="older" href="${esc(href)}">older runs →</a></p>""")
        }
    }

    /** One run: what it is, what it can be told to do, its failure, input and output, and its records as a timeline. */
    suspend fun run(id: String, flash: String?): String {
        val run = client.describe(id)
        val message = flashed(flash)
        return page("Run ${run.id}") {
            append("""<p><a href="/">← runs</a></p>""")
            append("""<h2>${esc(run.id)} ${badge(run)}</h2>""")
            message?.let { append("""<p class="msg" id="msg">${esc(it)}</p>""") }
            actions(run)
            append("<table class=\"fields\">")
            listOfNotNull(
                "Workflow" to esc(run.workflowName), "Queue" to esc(run.queue), "Created" to time(run.createdAt),
                run.startedAt?.let { "Started" to time(it) }, run.finishedAt?.let { "Finished" to time(it) },
                "Claims" to run.claimCount.toString(), run.leaseOwner?.let { "Worker" to esc(it) },
                run.parentId?.let { "Parent" to """<a href="/runs/${enc(it)}">${esc(it)}</a>""" },
                run.continuedAs?.let { "Continued as" to """<a href="/runs/${enc(it)}">${esc(it)}</a>""" },
                run.waitingForSignals.takeIf { it.isNotEmpty() }?.let { "Waiting for" to esc(it.joinToString()) },
                run.diagnosis?.let { "Diagnosis" to esc(it) }, run.retries.takeIf { it > 0 }?.let { "Retries" to it.toString() },
            ).forEach { (k, v) -> append("<tr><th>$k</th><td>$v</td></tr>") }
            append("</table>")
            run.failure?.let { f ->
                append("""<h3>Failure</h3><div class="failure" id="failure"><p><b>${esc(f.type)}</b>${f.message?.let { ": " + esc(it) } ?: ""}</p>""")
                append("<pre>").append(esc(stack(f))).append("</pre></div>")
            }
            append("<h3>Timeline</h3>").append(timeline(run))
            if (run.children.isNotEmpty()) {
                append("<h3>Children</h3><ul>")
                run.children.forEach { append("""<li><a href="/runs/${enc(it)}">${esc(it)}</a></li>""") }
                append("</ul>")
            }
            append("""<h3>Input</h3><pre id="input">${esc(pretty(run.input))}</pre>""")
            run.output?.let { append("""<h3>Output</h3><pre id="output">${esc(pretty(it))}</pre>""") }
        }
    }

    private fun StringBuilder.actions(run: RunInfo) {
        fun button(action: String, label: String, confirm: String? = null) {
            val ask = confirm?.let { " onsubmit=\"return confirm('$it')\"" } ?: ""
            append("""<form method="post" action="/runs/${enc(run.id)}/$action" class="inline"$ask>""")
            append("""<input type="hidden" name="csrf" value="$csrf"><button type="submit" id="$action">$label</button></form> """)
        }
        append("""<div class="actions">""")
        if (run.status == RunStatus.FAILED) button("retry", "Retry from the failed step")
        if (!run.status.isFinished) button("cancel", "Cancel", "Cancel this run?")
        if (run.status.isFinished) button("delete", "Delete", "Delete this run and its records?")
        if (!run.status.isFinished) {
            append("""<form method="post" action="/runs/${enc(run.id)}/signal" class="inline signal"><input type="hidden" name="csrf" value="$csrf">""")
            append("""<input name="name" id="signal-name" placeholder="signal name" required> """)
            append("""<input name="payload" id="signal-payload" placeholder="JSON payload (null)">""")
            append("""<button type="submit" id="signal">Send signal</button></form>""")
        }
        append("</div>")
    }

    /** Carries out [action] on run [id]; returns what to tell the user. */
    suspend fun act(id: String, action: String, form: Map<String, String>): String = when (action) {
        "cancel" -> "cancel requested: the run is now ${client.cancel(id)}"
        "retry" -> "retried: the run is now ${client.retry(id)}"
        "delete" -> {
            client.delete(id)
            "deleted run $id"
        }
        "signal" -> {
            val name = form["name"].orEmpty().trim()
            val payload = form["payload"]?.takeIf { it.isNotBlank() } ?: "null"
            val element = try {
                Codecs.json.parseToJsonElement(payload)
            } catch (e: Exception) {
                return "failed: the payload is not JSON (${e.message}); quote a string as \"text\""
            }
            client.signal(id, name, element, Codecs.kotlinx(JsonElement.serializer()))
            "signal '$name' sent"
        }
        else -> "failed: no action '$action'"
    }

    /** The records as a Gantt-like chart: one bar per record, placed and sized by when it began and ended. */
    private fun timeline(run: RunInfo): String = buildString {
        val entries = RunTimeline.of(run)
        if (entries.isEmpty()) return "<p class=\"muted\">no records yet</p>"
        // a retry moves startedAt: the chart begins at the earliest of the run's creation and its first record
        val origin = minOf(run.createdAt, entries.first().start)
        val endAll = listOfNotNull(run.finishedAt, entries.maxOf { it.end }).max()
        val span = Duration.between(origin, endAll).toMillis().coerceAtLeast(1).toDouble()
        append("""<table class="timeline" id="timeline"><thead><tr><th>Record</th><th>Kind</th><th>Status</th><th>Took</th><th class="chart">""")
        append("""0 … ${seconds(Duration.between(origin, endAll))}</th></tr></thead><tbody>""")
        for (e in entries) {
            val r = e.record
            val left = Duration.between(origin, e.start).toMillis().coerceAtLeast(0) / span * 100
            val width = (Duration.between(e.start, e.end).toMillis() / span * 100).coerceIn(0.4, 100.0 - left.coerceAtMost(99.6))
            val status = if (e.slept) "slept" else r.status.name.lowercase()
            val css = "${r.kind.name.lowercase()} $status"
            val title = "${r.id}: ${r.kind} ${r.status}, ${time(e.start)} → ${time(e.end)}" + (r.failure?.let { " — ${it.type}: ${it.message}" } ?: "")
            append("""<tr data-record="${esc(r.id)}"><td>${esc(r.id)}</td><td>${r.kind.name.lowercase()}</td><td>$status""")
            if (r.attempts > 1) append(" (${r.attempts} attempts)")
            append("""</td><td>${seconds(Duration.between(e.start, e.end))}</td>""")
            val style = "margin-left:${"%.2f".format(Locale.ROOT, left)}%;width:${"%.2f".format(Locale.ROOT, width)}%"
            append("""<td class="chart"><div class="bar $css" style="$style" title="${esc(title)}"></div></td></tr>""")
        }
        append("</tbody></table>")
        append("""<p class="legend"><span class="bar step completed"></span> step <span class="bar step retrying"></span> retry wait """)
        append("""<span class="bar sleep waiting"></span> sleep <span class="bar signal completed"></span> signal """)
        append("""<span class="bar child completed"></span> child """)
        append("""<span class="bar step failed"></span> failed</p>""")
    }

    fun error(title: String, detail: String): String = page(title) { append("<p>").append(esc(detail)).append("""</p><p><a href="/">← runs</a></p>""") }

    private inline fun page(title: String, body: StringBuilder.() -> Unit): String = buildString {
        append("""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Stent</title>""")
        append("""<meta name="viewport" content="width=device-width, initial-scale=1"><style>$CSS</style></head><body>""")
        append("""<header><a href="/" class="brand">Stent</a> <span class="muted">${esc(title)}</span></header><main>""")
        body()
        append("</main></body></html>")
    }

    private fun badge(r: RunInfo) =
        """<span class="badge ${r.status.name.lowercase()}">${r.status.name}${r.failureKind?.let { " · " + it.name.lowercase() } ?: ""}</span>"""

    private fun stack(f: Failure): String = buildString {
        append(f.stackTrace.trimEnd())
        f.cause?.let { c -> append("\ncaused by ").append(c.type).append(c.message?.let { ": $it" } ?: "").append('\n').append(stack(c)) }
    }

    private fun pretty(text: String): String = try {
        PRETTY.encodeToString(JsonElement.serializer(), Codecs.json.parseToJsonElement(text))
    } catch (e: Exception) {
        text
    }

    companion object {
        const val PAGE = 50
        private val PRETTY = Json { prettyPrint = true }

        fun esc(s: String): String = buildString(s.length) {
            for (c in s) {
                when (c) {
                    '<' -> append("&lt;")
                    '>' -> append("&gt;")
                    '&' -> append("&amp;")
                    '"' -> append("&quot;")
                    '\'' -> append("&#39;")
                    else -> append(c)
                }
            }
        }

        fun enc(s: String): String = URLEncoder.encode(s, Charsets.UTF_8).replace("+", "%20")

        /** A query string or form body; throws IllegalArgumentException for a malformed escape. */
        fun query(raw: String?): Map<String, String> = raw.orEmpty().split('&').filter { it.isNotEmpty() }.associate { pair ->
            URLDecoder.decode(pair.substringBefore('='), Charsets.UTF_8) to URLDecoder.decode(pair.substringAfter('=', ""), Charsets.UTF_8)
        }

        /** A path segment: percent escapes only (a '+' in a path is a plus, not a space). */
        fun dec(segment: String): String = URLDecoder.decode(segment.replace("+", "%2B"), Charsets.UTF_8)

        private const val STATS_EVERY_NANOS = 10_000_000_000L

        fun time(i: Instant): String = i.toString().replace('T', ' ').removeSuffix("Z").let { if ('.' in it) it.substring(0, minOf(it.length, 23)) else it }

        fun seconds(d: Duration): String = when {
            d.toMillis() < 1_000 -> "${d.toMillis()} ms"
            d.toSeconds() < 120 -> "%.1f s".format(Locale.ROOT, d.toMillis() / 1000.0)
            d.toMinutes() < 120 -> "${d.toMinutes()} min"
            d.toHours() < 48 -> "${d.toHours()} h"
            else -> "${d.toDays()} d"
        }

        private val CSS = """
            body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
            header{background:#1d2330;color:#fff;padding:10px 20px}header .brand{color:#fff;font-weight:700;text-decoration:none;margin-right:12px}
            header .muted{color:#aab}main{padding:16px 20px;max-width:1300px}
            a{color:#2456c9}table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:6px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
            th{font-weight:600;color:#556;background:#fafbfc}.fields{width:auto}.fields th{width:110px}
            .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e3e6ea}
            .badge.completed{background:#d7f2df;color:#17622f}.badge.failed{background:#fbdcdc;color:#8c1c1c}.badge.running{background:#dbe7fd;color:#1c3f8c}
            .badge.waiting{background:#fdf0d2;color:#7a5608}.badge.pending{background:#ececf4;color:#444}.badge.cancelled{background:#eee;color:#666}
            .muted{color:#778}.msg{background:#fff7d6;border:1px solid #f0dc8c;padding:6px 10px}.filters label{margin-right:10px}
            .filters,.counts,.actions{margin:10px 0}.inline{display:inline}.signal input{width:170px}
            button{padding:4px 10px;border:1px solid #9aa3b2;border-radius:4px;background:#fff;cursor:pointer}button:hover{background:#eef1f6}
            .failure{background:#fff;border-left:4px solid #d33;padding:4px 12px}pre{background:#fff;border:1px solid #e3e6ea;padding:8px;overflow:auto;max-height:360px}
            .timeline td.chart,.timeline th.chart{width:55%}.bar{height:14px;border-radius:3px;background:#6b8fd6;min-width:3px}
            .bar.step.completed{background:#4a9e6b}.bar.step.retrying{background:#e0a030}.bar.failed{background:#d33}.bar.sleep{background:#a9b4c6}
            .bar.signal{background:#9b6bd6}.bar.child{background:#3aa0b5}.bar.waiting{background-image:repeating-linear-gradient(45deg,transparent 0 4px,#fff6 4px 8px)}
            .legend .bar{display:inline-block;width:18px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
        """.trimIndent().replace("\n", "")
    }
}
