package dev.stent.cli

import io.kotest.core.spec.style.FunSpec
import picocli.CommandLine
import java.io.File
import java.io.PrintWriter
import java.io.StringWriter

/**
 * `docs/cli.md` is the commands' own help, every command in turn: a change to a command's options or
 * text must reach the page. Rewrite it with `-Dstent.docs.write=true` (see docs/contributing in the README).
 */
class CliReferenceSpec : FunSpec({
    test("docs/cli.md is generated from the commands' help") {
        val page = File(System.getProperty("stent.root") ?: "..", "docs/cli.md")
        val generated = reference()
        if (System.getProperty("stent.docs.write") == "true") page.writeText(generated)
        if (page.readText() != generated) {
            error("docs/cli.md differs from the commands' help: rewrite it with mvn -pl stent-cli test -Dtest=CliReferenceSpec -Dstent.docs.write=true")
        }
    }
})

/** The reference page: an introduction, then each command's usage help. */
fun reference(): String = buildString {
    append(
        """
        |# `stent` command reference
        |
        |Generated from the commands' own help by `CliReferenceSpec`; see [Operating Stent from the command line](operations/cli.md)
        |for a tour. Run `scripts/stent --help` (or `java -jar stent-cli/target/stent-cli-*-all.jar --help`).
        |
        """.trimMargin(),
    )
    fun visit(cmd: CommandLine) {
        val name = generateSequence(cmd) { it.parent }.toList().reversed().joinToString(" ") { it.commandName }
        val text = StringWriter()
        cmd.usage(PrintWriter(text), CommandLine.Help.Ansi.OFF)
        append("\n## `").append(name).append("`\n\n```text\n").append(text.toString().trimEnd()).append("\n```\n")
        cmd.subcommands.values.filter { it.commandName != "help" }.forEach(::visit)
    }
    visit(StentCli.commandLine(PrintWriter(StringWriter()), PrintWriter(StringWriter())))
}
