package dev.stent.javatest;

import dev.stent.Stent;
import dev.stent.StentWorker;
import dev.stent.exposed.Stents;
import dev.stent.java.Workers;

import java.nio.file.Path;
import java.time.Duration;

/** A worker JVM written in Java: {@code JavaWorkerMain <sqlite file> <log dir>}. Prints READY, runs until killed. */
public final class JavaWorkerMain {
    public static void main(String[] args) throws InterruptedException {
        Stent stent = Stents.sqlite(args[0]);
        StentWorker worker = Workers.builder(stent)
            .register(OrderWorkflows.crash(Path.of(args[1])))
            .leaseDuration(Duration.ofSeconds(2))
            .pollInterval(Duration.ofMillis(50))
            .start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> { worker.close(); stent.close(); }));
        System.out.println("READY");
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
