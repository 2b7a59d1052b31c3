package dev.stent.spring

import dev.stent.Stent
import dev.stent.StentClient
import dev.stent.StentConfigurationException
import dev.stent.StentOptions
import dev.stent.StentWorker
import dev.stent.WorkflowDefinition
import dev.stent.exposed.Stents
import dev.stent.java.FutureClient
import dev.stent.stentWorker
import org.slf4j.LoggerFactory
import org.springframework.beans.factory.ObjectProvider
import org.springframework.boot.autoconfigure.AutoConfiguration
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty
import org.springframework.boot.context.properties.EnableConfigurationProperties
import org.springframework.context.SmartLifecycle
import org.springframework.context.annotation.Bean
import org.springframework.context.annotation.Configuration
import javax.sql.DataSource
import kotlin.time.toKotlinDuration

/**
 * Stent for a Spring Boot application: a [Stent] on the SQLite file `stent.sqlite.path`, or else
 * on the application's [DataSource] (PostgreSQL); a worker for every [WorkflowDefinition] bean,
 * started and drained with the context ([StentWorkerCustomizer] beans add to its settings); the
 * Kotlin [StentClient] and the Java [FutureClient]; and, with Spring Boot's health module, a health
 * indicator. Each backs off when the application defines its own (its own `StentWorker` too).
 * Metrics are [StentMetricsAutoConfiguration].
 */
@AutoConfiguration(afterName = ["org.springframework.boot.jdbc.autoconfigure.DataSourceAutoConfiguration"])
@ConditionalOnClass(Stent::class)
@EnableConfigurationProperties(StentProperties::class)
public class StentAutoConfiguration {
    /** The installation: SQLite when `stent.sqlite.path` is set, else the DataSource; closed with the context. */
    @Bean(destroyMethod = "close")
    @ConditionalOnMissingBean
    public fun stent(properties: StentProperties, dataSource: ObjectProvider<DataSource>): Stent {
        val options = StentOptions(storeTimeout = properties.storeTimeout.toKotlinDuration(), migrate = properties.isMigrate)
        properties.sqlite.path?.takeIf { it.isNotBlank() }?.let { return Stents.sqlite(it, options) }
        val source = dataSource.ifAvailable ?: throw StentConfigurationException(
            "Stent needs a store: set stent.sqlite.path to a SQLite file, or configure a PostgreSQL DataSource (spring.datasource.url)",
        )
        val product = source.connection.use { it.metaData.databaseProductName }
        if (!product.equals("PostgreSQL", ignoreCase = true)) {
            throw StentConfigurationException(
                "the application's DataSource is $product, and Stent stores runs in PostgreSQL or SQLite: " +
                    "point spring.datasource.url at PostgreSQL, or set stent.sqlite.path to a SQLite file",
            )
        }
        return Stents.postgres(source, properties.schema, properties.maxConnections, options)
    }

    /** The Kotlin client. */
    @Bean
    @ConditionalOnMissingBean
    public fun stentClient(stent: Stent): StentClient = stent.client

    /** The Java client. */
    @Bean
    @ConditionalOnMissingBean
    public fun stentFutureClient(stent: Stent): FutureClient = FutureClient.of(stent)

    /** The worker, when `stent.worker.enabled` (default) and the application defines workflows. */
    @Bean
    @ConditionalOnMissingBean(StentWorkerLifecycle::class, StentWorker::class)
    @ConditionalOnProperty(prefix = "stent.worker", name = ["enabled"], matchIfMissing = true)
    public fun stentWorkerLifecycle(
        stent: Stent,
        properties: StentProperties,
        workflows: ObjectProvider<WorkflowDefinition<*, *>>,
        customizers: ObjectProvider<StentWorkerCustomizer>,
    ): StentWorkerLifecycle = StentWorkerLifecycle(stent, properties.worker, { workflows.orderedStream().toList() }, { customizers.orderedStream().toList() })

    /** Health: the store answers, and the worker (if any) claims. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(name = ["org.springframework.boot.health.contributor.HealthIndicator"])
    public class Health {
        @Bean
        @ConditionalOnMissingBean(name = ["stentHealthIndicator"])
        @org.springframework.boot.health.autoconfigure.contributor.ConditionalOnEnabledHealthIndicator("stent")
        public fun stentHealthIndicator(stent: Stent, worker: ObjectProvider<StentWorkerLifecycle>): StentHealthIndicator =
            StentHealthIndicator(stent, worker.ifAvailable)
    }
}

/**
 * Stent's Micrometer metrics on the application's MeterRegistry, with `stent-micrometer` on the
 * class path. After Spring Boot's metrics auto-configuration, which creates the registry.
 */
@AutoConfiguration(
    afterName = [
        "dev.stent.spring.StentAutoConfiguration",
        "org.springframework.boot.micrometer.metrics.autoconfigure.MetricsAutoConfiguration",
        "org.springframework.boot.micrometer.metrics.autoconfigure.CompositeMeterRegistryAutoConfiguration",
    ],
)
@ConditionalOnClass(name = ["dev.stent.micrometer.StentMetrics", "io.micrometer.core.instrument.MeterRegistry"])
public class StentMetricsAutoConfiguration {
    @Bean(destroyMethod = "close")
    @ConditionalOnBean(Stent::class, io.micrometer.core.instrument.MeterRegistry::class)
    @ConditionalOnMissingBean
    public fun stentMetricsBinding(stent: Stent, registry: io.micrometer.core.instrument.MeterRegistry): StentMetricsBinding =
        StentMetricsBinding(dev.stent.micrometer.StentMetrics(registry).bindTo(stent))
}

/** Adds to the settings of the starter's worker what properties do not cover: queue limits, listeners, retention, … */
public fun interface StentWorkerCustomizer {
    public fun customize(worker: StentWorker.Builder)
}

/** The Micrometer binding of the application's Stent; closed with the context. */
public class StentMetricsBinding internal constructor(private val binding: AutoCloseable) : AutoCloseable {
    override fun close(): Unit = binding.close()
}

/**
 * Starts a worker for the workflow beans when the context starts, and shuts it down when the
 * context stops, first of Stent's beans: it stops claiming, waits up to `stent.worker.shutdown-grace`
 * for runs in flight, and hands the rest back to other workers.
 */
public class StentWorkerLifecycle internal constructor(
    private val stent: Stent,
    private val settings: StentProperties.Worker,
    private val workflows: () -> List<WorkflowDefinition<*, *>>,
    private val customizers: () -> List<StentWorkerCustomizer>,
) : SmartLifecycle {
    @Volatile
    private var worker: StentWorker? = null

    @Volatile
    private var started = false

    /** The running worker, or null before the context started it, after it stopped, or when there are no workflow beans. */
    public val current: StentWorker? get() = worker

    override fun start() {
        val definitions = workflows()
        if (definitions.isEmpty()) {
            log.info("stent: no WorkflowDefinition beans, so no worker; this application starts and reads runs only")
            started = true
            return
        }
        val extra = customizers()
        worker = stentWorker(stent) {
            definitions.forEach { register(it) }
            concurrency = settings.concurrency
            queues = settings.queues.takeIf { it.isNotEmpty() }?.toSet()
            leaseDuration = settings.leaseDuration.toKotlinDuration()
            pollInterval = settings.pollInterval.toKotlinDuration()
            shutdownGrace = settings.shutdownGrace.toKotlinDuration()
            maxClaims = settings.maxClaims
            extra.forEach { it.customize(this) }
        }
        started = true
    }

    override fun stop() {
        started = false
        val w = worker ?: return
        worker = null
        w.close()
    }

    override fun isRunning(): Boolean = started

    // the phase of the web server's graceful shutdown: beans (the Stent store among them) are destroyed only once
    // this returns, so runs in flight drain with the store open
    override fun getPhase(): Int = SmartLifecycle.DEFAULT_PHASE - 1024

    private companion object {
        val log = LoggerFactory.getLogger(StentWorkerLifecycle::class.java)
    }
}
