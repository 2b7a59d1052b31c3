package dev.stent.samples.spring;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

import dev.stent.it.TestPg;

/** The sample application on PostgreSQL, through the application's DataSource (the embedded server the suite starts). */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class OrdersOnPostgresTest {
    @DynamicPropertySource
    static void store(DynamicPropertyRegistry registry) {
        registry.add("stent.sqlite.path", () -> "");
        registry.add("spring.autoconfigure.exclude", () -> "");
        registry.add("stent.schema", () -> "spring_sample_" + ProcessHandle.current().pid());
        registry.add("spring.datasource.url", () -> TestPg.INSTANCE.getUrl());
        registry.add("spring.datasource.username", () -> TestPg.INSTANCE.getUser());
        registry.add("spring.datasource.password", () -> TestPg.INSTANCE.getPassword());
    }

    @Autowired
    Environment env;

    @Test
    void anOrderShipsAndHealthIsUp() throws Exception {
        OrdersApi.orderShipsThroughTheEndpoints(env, "pg-1");
        OrdersApi.healthIsUp(env);
    }
}
