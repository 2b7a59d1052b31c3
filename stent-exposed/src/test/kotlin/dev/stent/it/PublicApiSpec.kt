package dev.stent.it

import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.collections.shouldBeEmpty
import io.kotest.matchers.shouldBe
import java.io.File
import java.lang.reflect.Member
import java.lang.reflect.Modifier
import kotlin.metadata.KmClass
import kotlin.metadata.KmPackage
import kotlin.metadata.Visibility
import kotlin.metadata.jvm.KotlinClassMetadata
import kotlin.metadata.jvm.fieldSignature
import kotlin.metadata.jvm.getterSignature
import kotlin.metadata.jvm.setterSignature
import kotlin.metadata.jvm.signature
import kotlin.metadata.visibility

/**
 * The public API of each published module, as the JVM (and so Java) sees it, is committed in
 * `<module>/api/<module>.api` and checked here: a change to it must be deliberate. After an intended
 * change, rewrite the files with `mvn -pl stent-exposed -am test -Dtest=PublicApiSpec -Dsurefire.failIfNoSpecifiedTests=false -Dstent.api.write=true`
 * and commit them (after `mvn clean`: class files of deleted sources left in `target/classes` would be dumped too).
 *
 * Kotlin `internal` declarations compile to public bytecode; they are left out by reading the Kotlin
 * metadata of each class (kotlin-metadata-jvm), as the Kotlin binary-compatibility validator does.
 */
class PublicApiSpec : FunSpec({
    val root = File(System.getProperty("stent.root") ?: "..")

    for (module in listOf("stent-dsl", "stent-runtime", "stent-exposed")) {
        test("the public API of $module is the committed one") {
            val dump = ApiDump(File(root, "$module/target/classes")).render()
            val file = File(root, "$module/api/$module.api")
            if (System.getProperty("stent.api.write") == "true") {
                file.parentFile.mkdirs()
                file.writeText(dump)
            }
            val committed = if (file.exists()) file.readText() else ""
            val added = dump.lines() - committed.lines().toSet()
            val removed = committed.lines() - dump.lines().toSet()
            if (added.isNotEmpty() || removed.isNotEmpty()) {
                error(
                    "the public API of $module differs from $file:\n" +
                        added.joinToString("") { "  + $it\n" } + removed.joinToString("") { "  - $it\n" } +
                        "if the change is intended, rewrite the file with -Dstent.api.write=true (see PublicApiSpec) and commit it",
                )
            }
        }
    }

    test("the types Java uses show no Kotlin machinery: no Continuation, Function, Unit or kotlin.time.Duration") {
        // Kotlin-only types (WorkflowScope, StentClient, the DSL builders such as RetryPolicy.Builder, whose constructors
        // Java cannot call) are not listed: Java uses the facade in dev.stent.java and its builders
        val javaFacing = Regex(
            """dev\.stent\.java\.\w+|dev\.stent\.exposed\.Stents|dev\.stent\.(Stent|StentOptions|StentWorker|RunInfo|RecordInfo|RunStatus|""" +
                """Failure|Codec|Codecs|WorkflowDefinition|RetryPolicy|NonRetryableException|RecordedException|\w+Exception)""",
        )
        val leaks = listOf("stent-dsl", "stent-runtime", "stent-exposed").flatMap { module ->
            var facing = false
            ApiDump(File(root, "$module/target/classes")).lines().mapNotNull { line ->
                if (!line.startsWith(" ")) {
                    facing = javaFacing.matches(line.substringAfter(" class ").substringAfter(" interface ").substringAfter(" enum ").substringBefore(" "))
                    null
                } else if (facing && !line.contains(Regex("""\w-[\w-]{7}\(""")) && // a mangled name: Java cannot call it at all
                    (
                        "kotlin.coroutines.Continuation" in line || "kotlin.jvm.functions.Function" in line ||
                            line.contains(Regex("""\bkotlin\.Unit\b""")) || "kotlin.time.Duration" in line
                        )
                ) {
                    "$module: $line"
                } else {
                    null
                }
            }
        }
        leaks.shouldBeEmpty()
    }

    test("Java sees one accessor style: a value is read with getX()/isX(), and a method without arguments named otherwise is an action") {
        // record-style accessors (id(), runId()) beside bean-style getters (getId()) were the mix Java callers met;
        // Kotlin properties give bean-style getters, so every zero-argument value method follows that
        val actions = setOf(
            "toString", "hashCode", "fillInStackTrace", "serializer", "result", "describe", "cancel", "list", "build", "start",
            "now", "random", "randomUuid", "dbNowMs", "listWorkers", "await", "encode", "listQueues", "listSchedules", "deadLetters", "capture", "stats",
            "toJson", "timeline",
        )
        val noArguments = Regex("""^\s+public ([\w.<>?, \[\]]+) (\w+)\(\)$""")
        val recordStyle = listOf("stent-dsl", "stent-runtime", "stent-exposed").flatMap { module ->
            ApiDump(File(root, "$module/target/classes")).lines().mapNotNull { line ->
                val (modifiersAndType, name) = noArguments.find(line)?.destructured ?: return@mapNotNull null
                val words = modifiersAndType.split(' ')
                when {
                    "static" in words || "void" in words -> null
                    name.startsWith("get") || name.startsWith("is") || name in actions -> null
                    else -> "$module: $line"
                }
            }
        }
        recordStyle shouldBe emptyList()
    }
})

/** The public classes and members of one module's compiled classes, one line each, sorted. */
private class ApiDump(private val classes: File) {
    fun render(): String = lines().joinToString("\n", postfix = "\n")

    fun lines(): List<String> {
        val loader = Thread.currentThread().contextClassLoader
        return classes.walkTopDown().filter { it.isFile && it.extension == "class" && it.name != "module-info.class" }
            .map { it.relativeTo(classes).path.removeSuffix(".class").replace(File.separatorChar, '.') }
            .sorted()
            .mapNotNull { name -> runCatching { Class.forName(name, false, loader) }.getOrNull() }
            // a class file of a deleted source, left behind without `mvn clean`, may no longer link: it is not API
            .filter { runCatching { isPublicApi(it) }.getOrElse { e -> if (e is LinkageError) false else throw e } }
            .map(::describe)
            .filter { it.size > 1 || metadata(classFor(it.first())) !is KotlinClassMetadata.FileFacade }
            .flatten()
            .toList()
    }

    private fun isPublicApi(c: Class<*>): Boolean {
        if (!Modifier.isPublic(c.modifiers) || c.isSynthetic || c.isAnonymousClass) return false
        if (c.enclosingClass != null && !isPublicApi(c.enclosingClass)) return false
        return when (val kotlin = metadata(c)) {
            is KotlinClassMetadata.Class -> kotlin.kmClass.visibility.let { it == Visibility.PUBLIC || it == Visibility.PROTECTED }
            else -> true // a file facade (top-level functions) or a Java class: its members decide
        }
    }

    private fun describe(c: Class<*>): List<String> {
        val hidden = hiddenMembers(c)
        val kind = when {
            c.isAnnotation -> "annotation"
            c.isInterface -> "interface"
            c.isEnum -> "enum"
            else -> "class"
        }
        val modifiers = Modifier.toString(c.modifiers and (Modifier.ABSTRACT or Modifier.FINAL or Modifier.INTERFACE).inv()).ifEmpty { "public" }
        val head = "$modifiers $kind ${c.name}" +
            (c.superclass?.takeIf { it != Any::class.java && it != Enum::class.java }?.let { " : ${it.name}" } ?: "") +
            c.interfaces.takeIf { it.isNotEmpty() }?.joinToString(", ", prefix = " implements ") { it.name }.orEmpty()
        val members = (c.declaredConstructors.toList() + c.declaredMethods + c.declaredFields)
            .filter { m -> visible(m) && (m as? java.lang.reflect.Executable)?.isSynthetic != true && !(m is java.lang.reflect.Field && m.isSynthetic) }
            .filter { m -> '$' !in m.name && jvmSignature(m) !in hidden }
            .map { "  ${signature(it)}" }
            .sorted()
        return listOf(head) + members
    }

    private fun visible(m: Member) = Modifier.isPublic(m.modifiers) || Modifier.isProtected(m.modifiers)

    private fun signature(m: Member): String = when (m) {
        is java.lang.reflect.Constructor<*> -> "${mods(m.modifiers)} <init>(${m.genericParameterTypes.joinToString { it.typeName }})"
        is java.lang.reflect.Method -> "${mods(m.modifiers)} ${m.genericReturnType.typeName} ${m.name}(${m.genericParameterTypes.joinToString { it.typeName }})"
        is java.lang.reflect.Field -> "${mods(m.modifiers)} field ${m.genericType.typeName} ${m.name}"
        else -> m.toString()
    }

    private fun mods(m: Int) = Modifier.toString(m and (Modifier.TRANSIENT or Modifier.VOLATILE or Modifier.NATIVE or Modifier.SYNCHRONIZED).inv())

    /** JVM signatures (`name(desc)`) of Kotlin members that are internal or private, though public in bytecode. */
    private fun hiddenMembers(c: Class<*>): Set<String> {
        val out = HashSet<String>()
        fun visit(
            functions: List<kotlin.metadata.KmFunction>,
            properties: List<kotlin.metadata.KmProperty>,
            constructors: List<kotlin.metadata.KmConstructor>,
        ) {
            for (f in functions) if (f.visibility != Visibility.PUBLIC && f.visibility != Visibility.PROTECTED) f.signature?.let { out += it.toString() }
            for (p in properties) if (p.visibility != Visibility.PUBLIC && p.visibility != Visibility.PROTECTED) {
                p.getterSignature?.let { out += it.toString() }
                p.setterSignature?.let { out += it.toString() }
                p.fieldSignature?.let { out += it.toString() }
            }
            for (k in constructors) if (k.visibility != Visibility.PUBLIC && k.visibility != Visibility.PROTECTED) k.signature?.let { out += it.toString() }
        }
        when (val kotlin = metadata(c)) {
            is KotlinClassMetadata.Class -> kotlin.kmClass.let { k: KmClass -> visit(k.functions, k.properties, k.constructors) }
            is KotlinClassMetadata.FileFacade -> kotlin.kmPackage.let { k: KmPackage -> visit(k.functions, k.properties, emptyList()) }
            is KotlinClassMetadata.MultiFileClassPart -> kotlin.kmPackage.let { k: KmPackage -> visit(k.functions, k.properties, emptyList()) }
            else -> Unit
        }
        return out
    }

    private fun jvmSignature(m: Member): String = when (m) {
        is java.lang.reflect.Constructor<*> -> "<init>(${m.parameterTypes.joinToString("") { desc(it) }})V"
        is java.lang.reflect.Method -> "${m.name}(${m.parameterTypes.joinToString("") { desc(it) }})${desc(m.returnType)}"
        is java.lang.reflect.Field -> "${m.name}:${desc(m.type)}"
        else -> ""
    }

    private fun desc(t: Class<*>): String = when {
        t.isArray -> "[" + desc(t.componentType)
        t == Void.TYPE -> "V"
        t == Integer.TYPE -> "I"
        t == java.lang.Long.TYPE -> "J"
        t == java.lang.Boolean.TYPE -> "Z"
        t == java.lang.Double.TYPE -> "D"
        t == java.lang.Float.TYPE -> "F"
        t == java.lang.Short.TYPE -> "S"
        t == java.lang.Byte.TYPE -> "B"
        t == Character.TYPE -> "C"
        else -> "L" + t.name.replace('.', '/') + ";"
    }

    private fun classFor(head: String): Class<*> =
        Class.forName(head.split(" ").first { it.startsWith("dev.") }, false, Thread.currentThread().contextClassLoader)

    private fun metadata(c: Class<*>): KotlinClassMetadata? =
        c.getAnnotation(Metadata::class.java)?.let { runCatching { KotlinClassMetadata.readLenient(it) }.getOrNull() }
}
