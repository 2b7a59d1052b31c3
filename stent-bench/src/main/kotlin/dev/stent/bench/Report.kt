package dev.stent.bench

import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import java.io.File
import java.util.Locale

/**
 * After the scenarios: prints the `vs_dbos` ratios as JSON lines, and writes every result to
 * `target/bench/results.jsonl` and a bar chart of throughput to `target/bench/benchmarks.svg`.
 */
class Report(private val results: List<JsonObject>, private val quick: Boolean) {
    private val out = File(System.getProperty("stent.bench.out", "target/bench")).apply { mkdirs() }

    fun writeAll() {
        val all = results + ratios()
        all.drop(results.size).forEach { println(it) }
        File(out, "results.jsonl").writeText(all.joinToString("\n", postfix = "\n"))
        File(out, "benchmarks.svg").writeText(svg())
        System.err.println("bench: wrote ${out.path}/results.jsonl and benchmarks.svg${if (quick) " (quick sizes)" else ""}")
    }

    /**
     * Stent on PostgreSQL against DBOS on the same server, per scenario (above 1 means Stent is better), and each
     * step's cost against the store's floors. With several rounds, round i of Stent is paired with round i of
     * DBOS (run one after the other): each line gives the median ratio, its spread (min, max) and the rounds.
     */
    private fun ratios(): List<JsonObject> {
        val versusDbos = listOf(
            Triple("step_overhead", "us_per_step", null), Triple("start_latency", "p50_ms", null),
            Triple("throughput_1step", "per_sec", 0.0), Triple("throughput_1step", "per_sec", 1.0), Triple("fanout", "per_sec", null),
        ).mapNotNull { (name, metric, workers) ->
            val dbos = results.filter { it.str("name") == name && it.str("engine") == "dbos" }
            val stent = results.filter {
                it.str("name") == name && it.str("engine") == "stent" && it.str("store") == "postgres" && (workers == null || it.num("workers") == workers)
            }
            val timeLike = metric != "per_sec"
            val pairs = stent.zip(dbos) { s, d -> if (timeLike) d.num(metric)!! / s.num(metric)!! else s.num(metric)!! / d.num(metric)!! }
            if (pairs.isEmpty()) return@mapNotNull null
            spread(name, "postgres", "vs_dbos", pairs) {
                workers?.let { put("workers", it.toInt()) }
                put("meaning", if (timeLike) "DBOS time / Stent time" else "Stent per_sec / DBOS per_sec")
            }
        }
        val toFloor = listOf("step_overhead", "checkpoint_direct").flatMap { name ->
            results.filter { it.str("name") == name && it.str("engine") == "stent" }.groupBy { it.str("store")!! }.mapNotNull { (store, rs) ->
                val values = rs.mapNotNull { it.num("ratio_to_floor") }
                if (values.isEmpty()) null else spread(name, store, "ratio_to_floor", values) { put("meaning", "time per write / one-statement floor") }
            }
        }
        return versusDbos + toFloor
    }

    /** One ratio over the rounds: its median, min and max. */
    private fun spread(name: String, store: String, ratio: String, values: List<Double>, extra: kotlinx.serialization.json.JsonObjectBuilder.() -> Unit) =
        buildJsonObject {
            val sorted = values.sorted()
            put("name", name)
            put("store", store)
            put(ratio, sorted[sorted.size / 2])
            put("${ratio}_min", sorted.first())
            put("${ratio}_max", sorted.last())
            put("rounds", sorted.size)
            extra()
        }

    /** Horizontal bars of per_sec (log scale), one per result that has a rate. */
    private fun svg(): String {
        val bars = results.filter { it.str("name") != "waiting_runs" && it.str("name") != "replay" && it.num("per_sec") != null }
        val rowH = 22
        val left = 330
        val width = 900
        val max = bars.maxOf { it.num("per_sec")!! }.coerceAtLeast(10.0)
        val scale = { v: Double -> (kotlin.math.log10(v.coerceAtLeast(1.0)) / kotlin.math.log10(max) * (width - left - 90)).coerceAtLeast(1.0) }
        val sb = StringBuilder()
        val h = bars.size * rowH + 50
        sb.append("""<svg xmlns="http://www.w3.org/2000/svg" width="$width" height="$h" font-family="sans-serif" font-size="12">""")
        sb.append("""<text x="10" y="18" font-size="14" font-weight="bold">Stent vs DBOS: operations per second (log scale, higher is better)</text>""")
        bars.forEachIndexed { i, r ->
            val y = 30 + i * rowH
            val v = r.num("per_sec")!!
            val workers = r.num("workers")?.let { if (it == 0.0) "worker in the starting JVM" else "${it.toInt()} worker JVM(s)" }
            val label = listOfNotNull(r.str("name"), r.str("store"), r.str("engine"), workers).joinToString(" · ")
            val color = if (r.str("engine") == "dbos") "#d9822b" else if (r.str("store") == "postgres") "#2b6cb0" else "#38a169"
            sb.append("""<text x="${left - 6}" y="${y + 14}" text-anchor="end">${esc(label)}</text>""")
            sb.append("""<rect x="$left" y="${y + 3}" width="${"%.1f".format(Locale.ROOT, scale(v))}" height="${rowH - 6}" fill="$color"/>""")
            sb.append("""<text x="${left + scale(v) + 4}" y="${y + 14}">${"%,.0f".format(Locale.ROOT, v)}/s</text>""")
        }
        sb.append("</svg>\n")
        return sb.toString()
    }

    private fun esc(s: String) = s.replace("&", "&amp;").replace("<", "&lt;")
}
