package dev.stent

/**
 * Where a run is in its life: `PENDING → RUNNING → (WAITING ⇄ PENDING) → COMPLETED | FAILED | CANCELLED`.
 */
public enum class RunStatus {
    /** Stored and claimable (now or at its ready time) by a worker that registered its workflow. */
    PENDING,

    /** Leased by one worker, which is executing it. */
    RUNNING,

    /** Unloaded from memory: it waits for a timer, a signal or a retry back-off. Holds no lease. */
    WAITING,

    /** Finished with an output. */
    COMPLETED,

    /** Finished with a failure: the dead-letter state, with the input and every step record kept. */
    FAILED,

    /** Cancelled by a client. */
    CANCELLED,

    ;

    /** True for the three final states. */
    public val isFinished: Boolean get() = this == COMPLETED || this == FAILED || this == CANCELLED
}
