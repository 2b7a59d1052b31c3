package dev.stent.spring.boottest;

import com.zaxxer.hikari.HikariDataSource;
import dev.stent.Stent;
import dev.stent.StentClient;
import dev.stent.StentConfigurationException;
import dev.stent.WorkflowDefinition;
import dev.stent.exposed.Stents;
import dev.stent.it.TestPg;
import dev.stent.java.FutureClient;
import dev.stent.java.RunRef;
import dev.stent.java.Workflows;
import dev.stent.spring.StentAutoConfiguration;
import dev.stent.spring.StentHealthIndicator;
import dev.stent.spring.StentMetricsBinding;
import dev.stent.spring.StentMetricsAutoConfiguration;
import dev.stent.spring.StentWorkerCustomizer;
import dev.stent.spring.StentWorkerLifecycle;
import dev.stent.StentWorker;
import dev.stent.java.Workers;
import org.springframework.boot.micrometer.metrics.autoconfigure.CompositeMeterRegistryAutoConfiguration;
import org.springframework.boot.micrometer.metrics.autoconfigure.MetricsAutoConfiguration;
import org.springframework.boot.micrometer.metrics.autoconfigure.export.simple.SimpleMetricsExportAutoConfiguration;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.health.contributor.Status;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

import javax.sql.DataSource;
import java.nio.file.Files;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The auto-configuration on a real SQLite file and a real PostgreSQL, in application contexts. */
class StentAutoConfigurationTest {
    static final AtomicInteger GREETINGS = new AtomicInteger();
    static final CountDownLatch SLOW_STARTED = new CountDownLatch(1);

    @Configuration(proxyBeanMethods = false)
    static class Workflows1 {
        @Bean
        WorkflowDefinition<String, String> greet() {
            return Workflows.define("greet", String.class, String.class, (ctx, name) ->
                ctx.step("hello", String.class, () -> { GREETINGS.incrementAndGet(); return "hello " + name; }));
        }

        @Bean
        WorkflowDefinition<String, String> slow() {
            return Workflows.define("slow", String.class, String.class, (ctx, name) ->
                ctx.step("work", String.class, () -> { SLOW_STARTED.countDown(); Thread.sleep(700); return "done " + name; }));
        }
    }

    @SuppressWarnings("unchecked")
    private static WorkflowDefinition<String, String> workflow(org.springframework.context.ApplicationContext context, String name) {
        return (WorkflowDefinition<String, String>) context.getBean(name, WorkflowDefinition.class);
    }

    private static ApplicationContextRunner runner() {
        return new ApplicationContextRunner().withConfiguration(AutoConfigurations.of(StentAutoConfiguration.class, StentMetricsAutoConfiguration.class));
    }

    private static String sqlitePath() throws Exception {
        return Files.createTempDirectory("stent-spring").resolve("stent.db").toString();
    }

    @Test
    void sqliteFromAPropertyRunsTheWorkflowBeans() throws Exception {
        runner().withUserConfiguration(Workflows1.class)
            .withPropertyValues("stent.sqlite.path=" + sqlitePath(), "stent.worker.concurrency=4")
            .run(context -> {
                assertNotNull(context.getBean(Stent.class));
                assertNotNull(context.getBean(StentClient.class));
                FutureClient client = context.getBean(FutureClient.class);
                RunRef<String> run = client.start(workflow(context, "greet"), "ann").join();
                assertEquals("hello ann", run.result(Duration.ofSeconds(30)).join());
                StentWorkerLifecycle lifecycle = context.getBean(StentWorkerLifecycle.class);
                assertTrue(lifecycle.isRunning());
                assertEquals(Status.UP, context.getBean(StentHealthIndicator.class).health().getStatus());
            });
    }

    @Test
    void postgresFromTheApplicationsDataSource() {
        runner().withUserConfiguration(Workflows1.class)
            .withBean(DataSource.class, () -> {
                HikariDataSource ds = new HikariDataSource();
                ds.setJdbcUrl(TestPg.INSTANCE.getUrl());
                ds.setUsername(TestPg.INSTANCE.getUser());
                ds.setPassword(TestPg.INSTANCE.getPassword());
                return ds;
            })
            .withPropertyValues("stent.schema=spring_" + ProcessHandle.current().pid())
            .run(context -> {
                FutureClient client = context.getBean(FutureClient.class);
                RunRef<String> run = client.start(workflow(context, "greet"), "bob").join();
                assertEquals("hello bob", run.result(Duration.ofSeconds(30)).join());
                assertEquals(Status.UP, context.getBean(StentHealthIndicator.class).health().getStatus());
            });
    }

    @Test
    void backsOffWhenTheApplicationDefinesItsOwnStent() throws Exception {
        Stent own = Stents.sqlite(sqlitePath()); // the context closes it
        runner().withBean("myStent", Stent.class, () -> own)
            .run(context -> {
                assertSame(own, context.getBean(Stent.class));
                assertEquals(1, context.getBeansOfType(Stent.class).size());
                // the clients are built on it
                assertNotNull(context.getBean(FutureClient.class));
            });
    }

    @Test
    void withoutAStoreTheContextFailsSayingWhatToSet() {
        runner().run(context -> {
            assertTrue(context.getStartupFailure() != null, "the context must not start without a store");
            Throwable cause = context.getStartupFailure();
            while (cause.getCause() != null && !(cause instanceof StentConfigurationException)) cause = cause.getCause();
            assertInstanceOf(StentConfigurationException.class, cause);
            assertTrue(cause.getMessage().contains("stent.sqlite.path"), cause.getMessage());
        });
    }

    @Test
    void stoppingTheContextDrainsARunInFlight() throws Exception {
        String path = sqlitePath();
        String[] runId = new String[1];
        runner().withUserConfiguration(Workflows1.class)
            .withPropertyValues("stent.sqlite.path=" + path, "stent.worker.shutdown-grace=10s")
            .run(context -> {
                FutureClient client = context.getBean(FutureClient.class);
                runId[0] = client.start(workflow(context, "slow"), "x").join().getId();
                assertTrue(SLOW_STARTED.await(30, TimeUnit.SECONDS));
            }); // the context closes here, with the step in flight
        try (Stent stent = Stents.sqlite(path)) {
            assertEquals("COMPLETED", FutureClient.of(stent).describe(runId[0]).join().getStatus().name(), "shutdown waited for the step");
        }
    }

    @Test
    void metricsGoToTheRegistrySpringBootMakes() throws Exception {
        new ApplicationContextRunner()
            .withConfiguration(AutoConfigurations.of(
                MetricsAutoConfiguration.class, SimpleMetricsExportAutoConfiguration.class, CompositeMeterRegistryAutoConfiguration.class,
                StentAutoConfiguration.class, StentMetricsAutoConfiguration.class))
            .withUserConfiguration(Workflows1.class)
            .withPropertyValues("stent.sqlite.path=" + sqlitePath())
            .run(context -> {
                assertNotNull(context.getBean(StentMetricsBinding.class));
                FutureClient client = context.getBean(FutureClient.class);
                client.start(workflow(context, "greet"), "dan").join().result(Duration.ofSeconds(30)).join();
                MeterRegistry registry = context.getBean(MeterRegistry.class);
                assertEquals(1.0, registry.get("stent.runs.finished").tag("workflow", "greet").counter().count());
            });
    }

    @Test
    void theApplicationsOwnWorkerAndCustomizers() throws Exception {
        String path = sqlitePath();
        runner().withUserConfiguration(Workflows1.class)
            .withPropertyValues("stent.sqlite.path=" + path)
            .withBean(StentWorkerCustomizer.class, () -> worker -> worker.setConcurrency(3))
            .run(context -> assertTrue(context.getBean(StentWorkerLifecycle.class).isRunning()));
        Stent own = Stents.sqlite(sqlitePath()); // closed by the context
        runner().withUserConfiguration(Workflows1.class)
            .withBean("myStent", Stent.class, () -> own)
            .withBean("myWorker", StentWorker.class, () -> Workers.builder(own).register(new Workflows1().greet()).start())
            .run(context -> assertFalse(context.containsBean("stentWorkerLifecycle"), "the application's own worker replaces the starter's"));
    }

    @Test
    void noWorkerWhenDisabledAndMetricsWithARegistry() throws Exception {
        runner().withUserConfiguration(Workflows1.class)
            .withBean(MeterRegistry.class, SimpleMeterRegistry::new)
            .withPropertyValues("stent.sqlite.path=" + sqlitePath(), "stent.worker.enabled=false")
            .run(context -> {
                assertFalse(context.containsBean("stentWorkerLifecycle"));
                assertNotNull(context.getBean(StentMetricsBinding.class));
                assertEquals(Status.UP, context.getBean(StentHealthIndicator.class).health().getStatus());
            });
    }

    @Test
    void configurationMetadataNamesEveryProperty() throws Exception {
        String metadata = new String(StentAutoConfigurationTest.class.getResourceAsStream("/META-INF/spring-configuration-metadata.json").readAllBytes());
        for (String property : new String[] {
            "stent.sqlite.path", "stent.migrate", "stent.schema", "stent.max-connections", "stent.store-timeout",
            "stent.worker.enabled", "stent.worker.concurrency", "stent.worker.queues", "stent.worker.lease-duration",
            "stent.worker.poll-interval", "stent.worker.shutdown-grace", "stent.worker.max-claims",
        }) {
            assertTrue(metadata.contains("\"" + property + "\""), property + " is missing from the configuration metadata");
        }
        assertTrue(metadata.contains("The SQLite file to open"), "descriptions come from the Javadoc");
    }

}
