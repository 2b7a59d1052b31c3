package dev.stent.samples.spring;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

import java.nio.file.Files;

/** The sample application on a SQLite file: an order ships through the REST endpoints; health is UP. */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class OrdersOnSqliteTest {
    @DynamicPropertySource
    static void store(DynamicPropertyRegistry registry) throws Exception {
        String path = Files.createTempDirectory("stent-spring-sample").resolve("orders.db").toString();
        registry.add("stent.sqlite.path", () -> path);
    }

    @Autowired
    Environment env;

    @Test
    void anOrderShipsAndHealthIsUp() throws Exception {
        OrdersApi.orderShipsThroughTheEndpoints(env, "sqlite-1");
        OrdersApi.healthIsUp(env);
    }
}
