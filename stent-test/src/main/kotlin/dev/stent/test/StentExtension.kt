package dev.stent.test

import org.junit.jupiter.api.extension.AfterEachCallback
import org.junit.jupiter.api.extension.BeforeEachCallback
import org.junit.jupiter.api.extension.ExtensionContext
import org.junit.jupiter.api.extension.ParameterContext
import org.junit.jupiter.api.extension.ParameterResolver
import java.util.function.Consumer

/**
 * A JUnit 5 extension that gives each test a fresh [StentTestEnvironment] and closes it after:
 * ```java
 * @RegisterExtension
 * final StentExtension stent = StentExtension.create(env -> env.register(OrderWorkflows.ORDER));
 *
 * @Test
 * void shipsAfterThirtyDays() {
 *     var run = stent.env().getFutures().start(OrderWorkflows.ORDER, order).join();
 *     assertEquals("shipped", stent.env().result(run));
 * }
 * ```
 * A test (or a `@BeforeEach` method) may also take the environment as a parameter.
 */
public class StentExtension private constructor(private val configure: Consumer<StentTestEnvironment.Builder>) :
    BeforeEachCallback,
    AfterEachCallback,
    ParameterResolver {
    @Volatile
    private var current: StentTestEnvironment? = null

    /** The environment of the test running now. */
    public fun env(): StentTestEnvironment =
        current ?: throw IllegalStateException("no Stent test environment: env() is for test methods, once the extension is registered")

    override fun beforeEach(context: ExtensionContext) {
        current = StentTestEnvironment.create(configure)
    }

    override fun afterEach(context: ExtensionContext) {
        val env = current
        current = null
        env?.close()
    }

    override fun supportsParameter(parameterContext: ParameterContext, extensionContext: ExtensionContext): Boolean =
        parameterContext.parameter.type == StentTestEnvironment::class.java

    override fun resolveParameter(parameterContext: ParameterContext, extensionContext: ExtensionContext): Any = env()

    public companion object {
        /** An extension whose environments [configure] sets up (Java). */
        @JvmStatic
        public fun create(configure: Consumer<StentTestEnvironment.Builder>): StentExtension = StentExtension(configure)

        /** An extension whose environments [configure] sets up (Kotlin). */
        @JvmSynthetic
        public operator fun invoke(configure: StentTestEnvironment.Builder.() -> Unit): StentExtension = StentExtension { it.configure() }
    }
}
