package dev.stent.spring;

import org.springframework.boot.context.properties.ConfigurationProperties;

import java.time.Duration;
import java.util.List;

/**
 * The {@code stent.*} properties. With {@code stent.sqlite.path} set, Stent opens that SQLite file;
 * otherwise it uses the application's {@code DataSource} (PostgreSQL).
 */
@ConfigurationProperties("stent")
public class StentProperties {
    /** Apply missing schema migrations when the store opens; with false, only check that the schema is there. */
    private boolean migrate = true;

    /** The PostgreSQL schema for Stent's tables (created if missing); default: the connection's search path. */
    private String schema;

    /**
     * How many of the DataSource's connections Stent may use at once (it also holds one more, to
     * listen for wake-ups). Keep it below the pool's size, so the application keeps connections of its own.
     */
    private int maxConnections = 4;

    /** The longest one database call may take. */
    private Duration storeTimeout = Duration.ofSeconds(30);

    private final Sqlite sqlite = new Sqlite();

    private final Worker worker = new Worker();

    public boolean isMigrate() { return migrate; }
    public void setMigrate(boolean migrate) { this.migrate = migrate; }
    public String getSchema() { return schema; }
    public void setSchema(String schema) { this.schema = schema; }
    public int getMaxConnections() { return maxConnections; }
    public void setMaxConnections(int maxConnections) { this.maxConnections = maxConnections; }
    public Duration getStoreTimeout() { return storeTimeout; }
    public void setStoreTimeout(Duration storeTimeout) { this.storeTimeout = storeTimeout; }
    public Sqlite getSqlite() { return sqlite; }
    public Worker getWorker() { return worker; }

    /** The SQLite store. */
    public static class Sqlite {
        /** The SQLite file to open (created if missing); when set, Stent ignores the DataSource. */
        private String path;

        public String getPath() { return path; }
        public void setPath(String path) { this.path = path; }
    }

    /** The worker that runs every WorkflowDefinition bean. */
    public static class Worker {
        /** Whether to start a worker with the application (false: this application only starts and reads runs). */
        private boolean enabled = true;

        /** Runs executing at once. */
        private int concurrency = 32;

        /** The queues to claim from; empty: every queue. */
        private List<String> queues = List.of();

        /** How long a claim lasts without a heartbeat before another worker may take the run over. */
        private Duration leaseDuration = Duration.ofSeconds(30);

        /** How often an idle worker looks for work it was not woken for. */
        private Duration pollInterval = Duration.ofMillis(500);

        /** How long shutdown waits for runs in flight before it releases them to other workers. */
        private Duration shutdownGrace = Duration.ofSeconds(10);

        /** Claims of one run without progress before the poison guard fails it. */
        private int maxClaims = 10;

        public boolean isEnabled() { return enabled; }
        public void setEnabled(boolean enabled) { this.enabled = enabled; }
        public int getConcurrency() { return concurrency; }
        public void setConcurrency(int concurrency) { this.concurrency = concurrency; }
        public List<String> getQueues() { return queues; }
        public void setQueues(List<String> queues) { this.queues = queues; }
        public Duration getLeaseDuration() { return leaseDuration; }
        public void setLeaseDuration(Duration leaseDuration) { this.leaseDuration = leaseDuration; }
        public Duration getPollInterval() { return pollInterval; }
        public void setPollInterval(Duration pollInterval) { this.pollInterval = pollInterval; }
        public Duration getShutdownGrace() { return shutdownGrace; }
        public void setShutdownGrace(Duration shutdownGrace) { this.shutdownGrace = shutdownGrace; }
        public int getMaxClaims() { return maxClaims; }
        public void setMaxClaims(int maxClaims) { this.maxClaims = maxClaims; }
    }
}
