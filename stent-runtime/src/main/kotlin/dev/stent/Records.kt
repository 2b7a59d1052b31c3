package dev.stent

/** What a record in a run's history is. */
public enum class RecordKind {
    /** A `step("id") { }` result or failure. */
    STEP,

    /** A durable timer from `sleep`/`sleepUntil`. */
    SLEEP,

    /** A consumed signal (or a timed-out signal wait). */
    SIGNAL,

    /** A recorded `now()`. */
    NOW,

    /** A recorded `randomUuid()`. */
    UUID,

    /** A recorded `random()`. */
    RANDOM,

    /** A child run: started (WAITING) or finished (COMPLETED, with the child's outcome); a map's progress. */
    CHILD,

    /** A published event: `setEvent(key, value)`, recorded as `event:<key>#<version>`. */
    EVENT,

    /** A `version(changeId, …)` decision: the version this run follows, recorded as `version:<changeId>`. */
    VERSION,
}

/** The state of one record. */
public enum class RecordStatus {
    /** Finished with a result: final. */
    COMPLETED,

    /** Finished with a failure: final. */
    FAILED,

    /** Failed an attempt; the next attempt is due at `wakeAt`. */
    RETRYING,

    /** A timer or a signal wait with a deadline at `wakeAt`. */
    WAITING,

    /** A signal wait whose deadline passed: final. */
    TIMED_OUT,

    ;

    /** True for the states that are never overwritten. */
    public val isFinal: Boolean get() = this == COMPLETED || this == FAILED || this == TIMED_OUT
}
