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

    /** Stent on PostgreSQL against DBOS on the same server, per scenario; above 1 means Stent is better. */
    private fun ratios(): List<JsonObject> = listOf("step_overhead", "throughput_1step", "fanout", "start_latency").mapNotNull { name ->
        val dbos = results.firstOrNull { it.str("name") == name && it.str("engine") == "dbos" } ?: return@mapNotNull null
        val stent = results.firstOrNull {
            it.str("name") == name && it.str("engine") == "stent" && it.str("store") == "postgres" &&
                (name != "throughput_1step" || it.num("workers") == 1.0)
        } ?: return@mapNotNull null
        val better = when (name) {
            "step_overhead" -> dbos.num("us_per_step")!! / stent.num("us_per_step")!!
            "start_latency" -> dbos.num("p50_ms")!! / stent.num("p50_ms")!!
            else -> stent.num("per_sec")!! / dbos.num("per_sec")!!
        }
        buildJsonObject {
            put("name", name)
            put("store", "postgres")
            put("vs_dbos", better)
            put("meaning", if (name == "step_overhead" || name == "start_latency") "DBOS time / Stent time" else "Stent per_sec / DBOS per_sec")
        }
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
            val workers = r.num("workers")?.let { "${it.toInt()} worker JVM(s)" }
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
