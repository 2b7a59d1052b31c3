package dev.stent.test

import io.kotest.core.extensions.TestCaseExtension
import io.kotest.core.test.TestCase
import io.kotest.core.test.TestType
import io.kotest.engine.test.TestResult

/**
 * A Kotest extension that gives each test (each leaf, not its containers) a fresh
 * [StentTestEnvironment] and closes it after:
 * ```
 * class OrderSpec : FunSpec({
 *     val stent = StentKotestExtension { register(order) }
 *     extension(stent)
 *     test("ships after thirty days") {
 *         val run = stent.env.client.start(order, Order("o-1"))
 *         stent.env.await(run) shouldBe "shipped"
 *     }
 * })
 * ```
 */
public class StentKotestExtension(private val configure: StentTestEnvironment.Builder.() -> Unit = {}) : TestCaseExtension {
    @Volatile
    private var current: StentTestEnvironment? = null

    /** The environment of the test running now. */
    public val env: StentTestEnvironment
        get() = current ?: throw IllegalStateException("no Stent test environment: use env inside a test, once the extension is registered")

    override suspend fun intercept(testCase: TestCase, execute: suspend (TestCase) -> TestResult): TestResult {
        if (testCase.type == TestType.Container) return execute(testCase)
        val env = StentTestEnvironment(configure)
        current = env
        try {
            return execute(testCase)
        } finally {
            current = null
            env.close()
        }
    }
}
