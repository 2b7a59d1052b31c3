package dev.stent

/** Why a FAILED run failed, so dead letters can be filtered by cause (`client.list(failureKind = …)`). */
public enum class FailureKind {
    /** A step failed for good: its retries were exhausted (or its policy does not retry that exception). */
    STEP,

    /** The workflow code threw (outside a step, or let a caught failure escape as another exception). */
    WORKFLOW,

    /** The poison guard failed it: it was claimed too many times without finishing (its workers kept dying). */
    POISON,

    /** The code no longer matches the run's recorded history (a step renamed, removed or reordered). */
    NON_DETERMINISM,

    /** A stored input, result or signal payload could not be decoded (or encoded) by the code's codec. */
    PAYLOAD,
    ;

    public companion object {
        /** The kind of a failure whose original exception had class name [type]. */
        @JvmStatic
        public fun ofType(type: String): FailureKind = when (type) {
            "dev.stent.StepFailedException", "dev.stent.StepTimeoutException" -> STEP
            POISON_TYPE -> POISON
            "dev.stent.NonDeterminismException", "dev.stent.DuplicateStepIdException" -> NON_DETERMINISM
            "dev.stent.PayloadException" -> PAYLOAD
            else -> WORKFLOW
        }

        /** The [Failure.type] the poison guard records. */
        public const val POISON_TYPE: String = "dev.stent.PoisonRun"
    }
}
