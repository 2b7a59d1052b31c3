package dev.stent.cli

import dev.stent.Stent
import dev.stent.StentException
import dev.stent.StentOptions
import dev.stent.StentSchemaException
import dev.stent.StentStoreException
import dev.stent.UnknownRunException
import dev.stent.UnknownScheduleException
import dev.stent.exposed.Stents
import kotlinx.coroutines.runBlocking
import picocli.CommandLine
import picocli.CommandLine.Command
import picocli.CommandLine.Model.CommandSpec
import picocli.CommandLine.Option
import picocli.CommandLine.ScopeType
import picocli.CommandLine.Spec
import java.io.File
import java.io.PrintWriter
import java.util.concurrent.Callable
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.seconds

/** The exit codes scripts can rely on. */
object ExitCodes {
    const val OK = 0

    /** The operation failed (for a bulk operation: at least one run). */
    const val FAILED = 1

    /** A wrong command, option or value. */
    const val USAGE = 2

    /** No run (or schedule) with that id. */
    const val NOT_FOUND = 3

    /** The database cannot be reached, or the URL is wrong. */
    const val UNREACHABLE = 4

    /** The database has no Stent tables, or another schema version. */
    const val NO_SCHEMA = 5
}

/** A failure the CLI reports with its own exit code. */
class CliException(val code: Int, message: String) : RuntimeException(message)

fun main(args: Array<String>) {
    // the CLI logs only warnings (to stderr): its output is for people and scripts
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn")
    exitProcess(StentCli.run(args, PrintWriter(System.out, true), PrintWriter(System.err, true)))
}

object StentCli {
    /** The command tree, writing to [out] and [err]; every error is a message and an exit code, never a stack trace. */
    fun commandLine(out: PrintWriter, err: PrintWriter): CommandLine = CommandLine(Root()).apply {
        this.out = Terminal.safe(out)
        this.err = Terminal.safe(err)
        isCaseInsensitiveEnumValuesAllowed = true
        setExecutionExceptionHandler { e, cmd, _ ->
            val (code, message) = when (e) {
                is CliException -> e.code to e.message
                is UnknownRunException, is UnknownScheduleException -> ExitCodes.NOT_FOUND to e.message
                is StentSchemaException -> ExitCodes.NO_SCHEMA to e.message
                is dev.stent.StentConfigurationException, is dev.stent.InvalidArgumentException -> ExitCodes.USAGE to e.message
                is StentStoreException -> ExitCodes.UNREACHABLE to e.message
                is StentException, is IllegalArgumentException -> ExitCodes.FAILED to e.message
                else -> ExitCodes.FAILED to e.toString()
            }
            cmd.err.println("stent: $message")
            code
        }
    }

    fun run(args: Array<String>, out: PrintWriter, err: PrintWriter): Int = commandLine(out, err).execute(*args)
}

@Command(
    name = "stent",
    mixinStandardHelpOptions = true,
    versionProvider = Version::class,
    description = ["Inspect and operate the runs of a Stent database (SQLite or PostgreSQL)."],
    subcommands = [
        RunsCommand::class, DeadLettersCommand::class, StatsCommand::class, WatchCommand::class,
        SchedulesCommand::class, QueuesCommand::class, DashboardCommand::class, CommandLine.HelpCommand::class,
    ],
    footerHeading = "%nExit codes:%n",
    footer = [
        "  0  success", "  1  the operation failed (a bulk operation: for at least one run)", "  2  wrong command, option or value",
        "  3  no run or schedule with that id", "  4  the database cannot be reached, or the URL is wrong",
        "  5  the database has no Stent tables, or another schema version",
        "", "The database comes from --db or STENT_DB: jdbc:sqlite:/path/stent.db or jdbc:postgresql://host:5432/db.",
    ],
)
class Root : Runnable {
    @Option(
        names = ["--db"], scope = ScopeType.INHERIT, paramLabel = "URL", defaultValue = "\${env:STENT_DB}",
        description = ["jdbc:sqlite:/path/stent.db or jdbc:postgresql://host:5432/db (default: \$STENT_DB)"],
    )
    var db: String? = null

    @Option(
        names = ["--user"], scope = ScopeType.INHERIT, defaultValue = "\${env:STENT_DB_USER:-postgres}",
        description = ["PostgreSQL user (\$STENT_DB_USER)"],
    )
    var user: String = "postgres"

    @Option(
        names = ["--password"], scope = ScopeType.INHERIT, defaultValue = "\${env:STENT_DB_PASSWORD}",
        description = ["PostgreSQL password (\$STENT_DB_PASSWORD)"],
    )
    var password: String? = null

    @Option(names = ["--schema"], scope = ScopeType.INHERIT, defaultValue = "\${env:STENT_DB_SCHEMA}", description = ["PostgreSQL schema (\$STENT_DB_SCHEMA)"])
    var schema: String? = null

    @Option(names = ["--json"], scope = ScopeType.INHERIT, description = ["print JSON instead of tables"])
    var json: Boolean = false

    @Spec
    lateinit var spec: CommandSpec

    override fun run() = throw CommandLine.ParameterException(spec.commandLine(), "name a command: ${spec.subcommands().keys.joinToString()}")

    /** Opens the database without creating or changing a table, runs [block], closes it. */
    fun <T> connect(block: (Stent) -> T): T {
        val url = db?.takeIf { it.isNotBlank() } ?: throw CliException(
            ExitCodes.USAGE,
            "no database: pass --db jdbc:sqlite:/path/stent.db or --db jdbc:postgresql://host:5432/db, or set STENT_DB",
        )
        val options = StentOptions(storeTimeout = 15.seconds, migrate = false)
        val stent = when {
            url.startsWith("jdbc:sqlite:") -> {
                val path = url.removePrefix("jdbc:sqlite:").substringBefore('?')
                if (!File(path).isFile) throw CliException(ExitCodes.UNREACHABLE, "no SQLite file at '$path': check the path in --db")
                checkSqliteHasStent(path)
                Stents.sqlite(path, options)
            }
            url.startsWith("jdbc:postgresql:") -> Stents.postgres(url, user, password ?: "", schema?.takeIf { it.isNotBlank() }, 2, options)
            else -> throw CliException(
                ExitCodes.UNREACHABLE,
                "unsupported database URL '$url': use jdbc:sqlite:/path/stent.db or jdbc:postgresql://host:5432/db",
            )
        }
        return stent.use(block)
    }
}

/**
 * Looks for Stent's tables read-only before the store opens the file: opening it sets the journal mode and
 * other settings for good, which a database of another application must not get from a mistyped path.
 */
private fun checkSqliteHasStent(path: String) {
    val found = try {
        val config = org.sqlite.SQLiteConfig().apply { setReadOnly(true) }
        java.sql.DriverManager.getConnection("jdbc:sqlite:$path", config.toProperties()).use { c ->
            c.createStatement().use { st ->
                st.executeQuery("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stent_schema_version'").use { it.next() }
            }
        }
    } catch (e: java.sql.SQLException) {
        throw CliException(ExitCodes.UNREACHABLE, "cannot read '$path' as a SQLite database: ${e.message}")
    }
    if (!found) {
        throw CliException(
            ExitCodes.NO_SCHEMA,
            "the database '$path' has no Stent tables: check the path in --db, or start a worker once, which creates them",
        )
    }
}

class Version : CommandLine.IVersionProvider {
    override fun getVersion(): Array<String> = arrayOf("stent ${Root::class.java.`package`.implementationVersion ?: "(development build)"}")
}

/** A command that talks to the database: connects, runs [execute], and returns its exit code. */
abstract class Action : Callable<Int> {
    @Spec
    lateinit var spec: CommandSpec

    val root: Root get() = generateSequence(spec) { it.parent() }.last().userObject() as Root
    val out: PrintWriter get() = spec.commandLine().out
    val err: PrintWriter get() = spec.commandLine().err
    val json: Boolean get() = root.json

    final override fun call(): Int = root.connect { stent -> runBlocking { execute(stent) } }

    abstract suspend fun execute(stent: Stent): Int

    fun usageError(message: String): Nothing = throw CommandLine.ParameterException(spec.commandLine(), message)
}

/**
 * What the CLI prints comes partly from the database (ids, failure messages, stack traces): control
 * characters in it (an ANSI escape in an exception's message) would drive the terminal, so they print
 * as `?`. JSON output is unchanged (it escapes them itself); line ends and tabs pass.
 */
object Terminal {
    fun safe(target: PrintWriter): PrintWriter = PrintWriter(
        object : java.io.Writer() {
            override fun write(cbuf: CharArray, off: Int, len: Int) {
                val copy = CharArray(len) { i ->
                    val c = cbuf[off + i]
                    if ((c < ' ' && c != '\n' && c != '\t' && c != '\r') || c == '\u007f' || c in '\u0080'..'\u009f') '?' else c
                }
                target.write(copy)
            }

            override fun flush() = target.flush()

            override fun close() = target.close()
        },
        true,
    )
}
