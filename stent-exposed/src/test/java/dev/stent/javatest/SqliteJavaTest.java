package dev.stent.javatest;

import dev.stent.Stent;
import dev.stent.exposed.Stents;
import dev.stent.java.FutureClient;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** A fresh SQLite file and its Java client per test, as a Java team would open them. */
abstract class SqliteJavaTest {
    @TempDir Path dir;
    Stent stent;
    FutureClient client;

    @BeforeEach
    void open() {
        stent = Stents.sqlite(dir.resolve("stent.db").toString());
        client = FutureClient.of(stent);
    }

    @AfterEach
    void close() {
        stent.close();
    }

    /** The future's value, failing the test after 30 s. */
    static <T> T get(CompletableFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }
}
