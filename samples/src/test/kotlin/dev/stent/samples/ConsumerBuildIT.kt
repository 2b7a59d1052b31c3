package dev.stent.samples

import io.kotest.assertions.withClue
import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.shouldBe
import io.kotest.matchers.string.shouldContain
import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/** Manages Kotlin 2.2 and coroutines 1.10, as Spring Boot 4.0's BOM does. */
private val OLD_KOTLIN_BOM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>stenttest</groupId><artifactId>old-kotlin-bom</artifactId><version>1</version><packaging>pom</packaging>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.jetbrains.kotlin</groupId><artifactId>kotlin-stdlib</artifactId><version>2.2.21</version></dependency>
    <dependency><groupId>org.jetbrains.kotlinx</groupId><artifactId>kotlinx-coroutines-core</artifactId><version>1.10.2</version></dependency>
    <dependency><groupId>org.jetbrains.kotlinx</groupId><artifactId>kotlinx-coroutines-core-jvm</artifactId><version>1.10.2</version></dependency>
  </dependencies></dependencyManagement>
</project>
"""

private const val OLD_KOTLIN_BOM_IMPORT =
    "<dependency><groupId>stenttest</groupId><artifactId>old-kotlin-bom</artifactId><version>1</version><type>pom</type><scope>import</scope></dependency>"

/**
 * The consumer projects of docs/consumers build and run as a user would copy them: `mvn -o compile
 * exec:java`, offline, against the Stent artifacts this build just made (an integration test: it
 * runs after `package`). Those are laid out in a local repository of their own, whose other
 * groups link to the user's repository (what the reactor resolved), so nothing of an older Stent
 * installed there can be picked up. The projects print the Kotlin standard library they run with.
 */
class ConsumerBuildIT : FunSpec({
    val root = File(System.getProperty("stent.root") ?: "..").canonicalFile
    val version = System.getProperty("stent.version") ?: "0.1.0-SNAPSHOT"
    val userRepo = File(System.getProperty("stent.userRepo") ?: "${System.getProperty("user.home")}/.m2/repository")

    /**
     * Deletes [dir] without following links: the repository links to the user's, and a delete that
     * followed them (Kotlin's `deleteRecursively` does) would empty it. `walkFileTree` without
     * `FOLLOW_LINKS` reports a link as a file, and deleting it deletes the link only.
     */
    fun deleteSafely(dir: File) {
        Files.walkFileTree(
            dir.toPath(),
            object : java.nio.file.SimpleFileVisitor<java.nio.file.Path>() {
                override fun visitFile(file: java.nio.file.Path, attrs: java.nio.file.attribute.BasicFileAttributes) =
                    java.nio.file.FileVisitResult.CONTINUE.also { Files.delete(file) }

                override fun postVisitDirectory(d: java.nio.file.Path, e: java.io.IOException?) =
                    java.nio.file.FileVisitResult.CONTINUE.also { Files.delete(d) }
            },
        )
    }

    /** A local repository: this build's Stent artifacts, and links to every other group of [userRepo]. */
    fun repository(): File {
        val repo = Files.createTempDirectory("stent-consumer-repo").toFile()
        for (top in userRepo.listFiles().orEmpty()) {
            if (top.name == "dev") continue
            Files.createSymbolicLink(File(repo, top.name).toPath(), top.toPath())
        }
        val dev = File(repo, "dev").apply { mkdirs() }
        File(userRepo, "dev").listFiles().orEmpty().filter { it.name != "stent" }.forEach { Files.createSymbolicLink(File(dev, it.name).toPath(), it.toPath()) }
        fun install(artifact: String, pom: File, jar: File?) {
            val dir = File(repo, "dev/stent/$artifact/$version").apply { mkdirs() }
            pom.copyTo(File(dir, "$artifact-$version.pom"))
            jar?.copyTo(File(dir, "$artifact-$version.jar"))
        }
        // a BOM like Spring Boot 4.0's for Kotlin: older Kotlin and coroutines (not in the repository)
        File(repo, "stenttest/old-kotlin-bom/1").apply { mkdirs() }.resolve("old-kotlin-bom-1.pom").writeText(OLD_KOTLIN_BOM)
        install("stent-parent", File(root, "pom.xml"), null)
        install("stent-bom", File(root, "stent-bom/pom.xml"), null)
        for (module in listOf("stent-dsl", "stent-runtime", "stent-exposed")) {
            val jar = File(root, "$module/target/$module-$version.jar")
            check(jar.isFile) { "$jar is missing: the consumer builds run after the modules are packaged (mvn verify from the root)" }
            install(module, File(root, "$module/pom.xml"), jar)
        }
        return repo
    }

    /** Builds and runs a copy of consumer [project], its pom changed by [pom]; its exit code and output. */
    fun build(project: String, pom: (String) -> String = { it }): Pair<Int, String> {
        val dir = Files.createTempDirectory("stent-consumer").toFile()
        val repo = repository()
        try {
            File(root, "docs/consumers/$project").copyRecursively(dir)
            File(dir, "pom.xml").let { it.writeText(pom(it.readText())) }
            val mvn = System.getProperty("maven.home")?.let { File(it, "bin/mvn").path } ?: "mvn"
            val log = File(dir, "build.log")
            val p = ProcessBuilder(mvn, "-o", "-B", "-q", "-Dmaven.repo.local=$repo", "compile", "exec:java")
                .directory(dir).redirectErrorStream(true).redirectOutput(log).start()
            check(p.waitFor(5, TimeUnit.MINUTES)) { p.destroyForcibly(); "the $project consumer build took over 5 minutes:\n${log.readText()}" }
            return p.exitValue() to log.readText()
        } finally {
            // a jar of the user's repository this JVM runs on: it must outlive the cleanup
            val witness = File(KotlinVersion::class.java.protectionDomain.codeSource.location.toURI())
            deleteSafely(repo)
            dir.deleteRecursively()
            check(witness.isFile) { "deleting the test repository removed $witness from the user's repository" }
        }
    }

    test("the BOM names the Kotlin, coroutines and serialization versions Stent is built with") {
        fun property(pom: File, name: String) = Regex("<$name>([^<]+)</$name>").find(pom.readText())?.groupValues?.get(1)
        for (name in listOf("kotlin.version", "coroutines.version", "serialization.version")) {
            withClue(name) { property(File(root, "stent-bom/pom.xml"), name) shouldBe property(File(root, "pom.xml"), name) }
        }
    }

    test("the Java consumer project of docs/consumers builds offline and runs a workflow to completion") {
        val (code, out) = build("java")
        withClue(out) {
            code shouldBe 0
            out shouldContain "order o-7 shipped (auth-o-7, approved by ana)"
            out shouldContain "on Kotlin ${KotlinVersion.CURRENT}"
        }
    }

    test("with a BOM after Stent's that manages an older Kotlin (as Spring Boot 4.0's does), the Java consumer still runs on Stent's") {
        val (code, out) = build("java") { pom ->
            val afterStent = pom.indexOf("</dependency>", pom.indexOf("<artifactId>stent-bom</artifactId>")) + "</dependency>".length
            check(afterStent > "</dependency>".length) { "no stent-bom import in the Java consumer's pom" }
            pom.substring(0, afterStent) + "\n      " + OLD_KOTLIN_BOM_IMPORT + pom.substring(afterStent)
        }
        withClue(out) {
            // had the older versions won, the build would fail: they are not in the repository (offline)
            code shouldBe 0
            out shouldContain "order o-7 shipped (auth-o-7, approved by ana)"
            out shouldContain "on Kotlin ${KotlinVersion.CURRENT}"
        }
    }

    test("the Kotlin consumer project of docs/consumers builds offline and runs a workflow to completion") {
        val (code, out) = build("kotlin")
        withClue(out) {
            code shouldBe 0
            out shouldContain "order o-7 shipped (auth-o-7, approved by ana)"
            out shouldContain "on Kotlin ${KotlinVersion.CURRENT}"
        }
    }
})
