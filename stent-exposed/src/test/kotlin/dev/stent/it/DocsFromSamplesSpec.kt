package dev.stent.it

import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.ints.shouldBeGreaterThan
import io.kotest.matchers.shouldBe
import java.io.File

/**
 * The code in the README and in docs/ is cut from compiled code, so it cannot rot: every line of
 * their Kotlin and Java blocks must appear, as written, in the samples module (main or test) or in the tests of
 * stent-exposed (lines may be left out). Comments belong to the page: a trailing `// …` is not
 * compared, and neither is indentation or the spaces that align comments.
 */
class DocsFromSamplesSpec : FunSpec({
    val root = File(System.getProperty("stent.root") ?: "..")
    val sources = listOf("samples/src/main", "samples/src/test", "samples/spring-boot/src", "stent-exposed/src/test").map { File(root, it) }

    fun codeOf(line: String): String = line.replace(Regex("""\s//(?=(?:[^"]*"[^"]*")*[^"]*$).*"""), "").trim().replace(Regex("\\s+"), " ")

    fun linesOf(extension: String): Set<String> =
        sources.flatMap { dir -> dir.walkTopDown().filter { it.isFile && it.extension == extension }.toList() }
            .flatMap { it.readLines() }.map(::codeOf).toSet()

    val compiled = mapOf("kotlin" to linesOf("kt"), "java" to linesOf("java"))
    val pages = listOf(File(root, "README.md")) + File(root, "docs").walkTopDown().filter { it.extension == "md" }

    test("every line of the Kotlin and Java code in the README and docs is a line of compiled code") {
        val blocks = pages.flatMap { page ->
            Regex("```(kotlin|java)\\n(.*?)```", RegexOption.DOT_MATCHES_ALL).findAll(page.readText()).map { page to it.destructured }.toList()
        }
        blocks.size shouldBeGreaterThan 20
        val missing = blocks.flatMap { (page, block) ->
            val (lang, code) = block
            code.lines().map(::codeOf).filter { it.isNotEmpty() && !it.startsWith("//") && it !in compiled.getValue(lang) }
                .map { "${page.relativeTo(root)} ($lang): $it" }
        }
        missing.shouldBeEmpty()
    }

    test("a trailing comment is the page's own, a comment marker inside a string is code") {
        codeOf("    val x = 1 //   a comment") shouldBe "val x = 1"
        codeOf("""Stent.sqlite("a//b")   // opens""") shouldBe """Stent.sqlite("a//b")"""
        codeOf("""println("// not a comment")""") shouldBe """println("// not a comment")"""
    }
})
