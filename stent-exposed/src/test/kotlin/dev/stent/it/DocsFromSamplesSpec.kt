package dev.stent.it

import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.ints.shouldBeGreaterThan
import java.io.File

/**
 * The code in the README is cut from the compiled samples, so it cannot rot: every line of its
 * Kotlin and Java blocks must appear, as written, in the sample it comes from (lines may be left out).
 */
class DocsFromSamplesSpec : FunSpec({
    val root = File(System.getProperty("stent.root") ?: "..")
    val samples = mapOf(
        "kotlin" to File(root, "samples/src/main/kotlin/dev/stent/samples/OrderSample.kt"),
        "java" to File(root, "samples/src/main/java/dev/stent/samples/JavaOrderSample.java"),
    )

    test("every line of the README's Kotlin and Java code is a line of its compiled sample") {
        val blocks = Regex("```(kotlin|java)\\n(.*?)```", RegexOption.DOT_MATCHES_ALL).findAll(File(root, "README.md").readText()).toList()
        blocks.size shouldBeGreaterThan 1
        val missing = blocks.flatMap { block ->
            val (lang, code) = block.destructured
            val sample = samples.getValue(lang).readLines().map { it.trim() }.toSet()
            code.lines().map { it.trim() }.filter { it.isNotEmpty() && it !in sample }.map { "$lang: $it" }
        }
        missing.shouldBeEmpty()
    }
})
