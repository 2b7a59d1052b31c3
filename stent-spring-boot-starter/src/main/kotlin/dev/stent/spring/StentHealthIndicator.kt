package dev.stent.spring

import dev.stent.InternalStentApi
import dev.stent.Stent
import org.springframework.boot.health.contributor.Health
import org.springframework.boot.health.contributor.HealthIndicator

/**
 * UP when the store answers (it reads the database clock: one cheap statement) and the worker,
 * if the application has one, runs; DOWN with the reason otherwise. Details: the worker's id and
 * how many runs it has loaded.
 */
public class StentHealthIndicator internal constructor(private val stent: Stent, private val worker: StentWorkerLifecycle?) : HealthIndicator {
    @OptIn(InternalStentApi::class)
    override fun health(): Health = try {
        if (stent.isClosed) throw IllegalStateException("the Stent installation is closed")
        stent.store.dbNowMs()
        val running = worker?.current
        when {
            worker != null && !worker.isRunning -> Health.down().withDetail("worker", "stopped")
            running != null -> Health.up().withDetail("worker", running.id).withDetail("activeRuns", running.activeRuns)
            else -> Health.up()
        }.build()
    } catch (e: Exception) {
        Health.down(e).build()
    }
}
