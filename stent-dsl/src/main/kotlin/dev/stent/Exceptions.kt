package dev.stent

import kotlin.time.Duration

/**
 * The root of every error Stent raises. Each carries the run, workflow and step it concerns as
 * properties (null where it does not apply), and a message that says what went wrong and how to
 * fix it.
 */
public sealed class StentException(message: String, cause: Throwable? = null) : RuntimeException(message, cause) {
    /** The run concerned, if any. */
    public open val runId: String? get() = null

    /** The workflow concerned, if any. */
    public open val workflowName: String? get() = null

    /** The step concerned, if any. */
    public open val stepId: String? get() = null
}

/**
 * A step failed for good: its exception was not retryable, or its attempts ran out. The failure
 * is recorded, so a replay throws this again without running the step. [failure] holds the
 * original exception's type, message, stack trace and cause chain; [cause] is the same failure
 * as a [RecordedException].
 */
public class StepFailedException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String,
    /** The attempts made. */
    public val attempts: Int,
    /** The last attempt's failure. */
    public val failure: Failure,
) : StentException(
    "step '$stepId' in workflow '$workflowName' (run '$runId') failed after $attempts attempt(s): $failure",
    RecordedException(failure),
)

/**
 * Thrown in a parent by [ChildRun.await] or [WorkflowScope.map] when a child run failed or was
 * cancelled: [childStatus] says which, [failure] is the child's recorded failure (for a cancel:
 * why). [stepId] is the call's id in the parent.
 */
public class ChildFailedException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String,
    /** The child's run id. */
    public val childRunId: String,
    /** FAILED or CANCELLED. */
    public val childStatus: RunStatus,
    public val failure: Failure,
) : StentException(
    "child run '$childRunId', started by call '$stepId' of run '$runId' (workflow '$workflowName'), finished $childStatus: $failure; " +
        "describe the child for its history, or catch ChildFailedException to compensate",
    RecordedException(failure),
)

/** Thrown by `await()` when the run finished FAILED; [failure] is the recorded failure. */
public class WorkflowFailedException(
    override val runId: String,
    override val workflowName: String,
    /** The run's recorded failure. */
    public val failure: Failure,
) : StentException("workflow '$workflowName' (run '$runId') failed: $failure", RecordedException(failure))

/**
 * Thrown by `await()` when the run was cancelled: by a client's `cancel()`, or because its
 * deadline passed. [reason] says which when Stent knows (the deadline, for example).
 */
public class WorkflowCancelledException @JvmOverloads constructor(
    override val runId: String,
    override val workflowName: String,
    /** Why the run was cancelled, when recorded (a passed deadline); null for a client's cancel. */
    public val reason: String? = null,
) : StentException("workflow '$workflowName' (run '$runId') was cancelled" + (reason?.let { ": $it" } ?: ""))

/**
 * One attempt of a step ran longer than the step's timeout. The body was cancelled (its thread
 * interrupted) and the attempt counts as failed: it is retried by the step's retry policy like any
 * other failure, and recorded as the cause when the attempts run out.
 */
public class StepTimeoutException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String,
    /** The attempt that timed out, from 1. */
    public val attempt: Int,
    /** The step's timeout. */
    @get:JvmSynthetic public val timeout: Duration,
) : StentException(
    "attempt $attempt of step '$stepId' in workflow '$workflowName' (run '$runId') did not finish within its timeout of $timeout; " +
        "it was interrupted and counts as a failed attempt: raise the timeout or make the step faster",
)

/**
 * A call got an argument it cannot accept: a blank or over-long name, a negative duration, a size
 * out of range. Nothing was stored. The message quotes the value and says what is allowed; the
 * run, workflow and step are set when the call was made inside a workflow.
 */
public class InvalidArgumentException @JvmOverloads constructor(
    message: String,
    override val runId: String? = null,
    override val workflowName: String? = null,
    override val stepId: String? = null,
) : StentException(message)

/** Thrown by `awaitSignal` when no signal arrived within its timeout. The timeout is recorded, so replay throws it again. */
public class SignalTimeoutException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String,
    /** The signal's name. */
    public val signalName: String,
    /** The timeout that passed. */
    @get:JvmSynthetic public val timeout: Duration,
) : StentException("no signal '$signalName' arrived within $timeout in workflow '$workflowName' (run '$runId', wait '$stepId')")

/**
 * The workflow code did something other than what the run's records say it did before: a step
 * id recorded as another kind, or a recorded step the code no longer reaches. The run goes FAILED
 * with this; fix the code (or start a new run) and keep workflow code outside steps deterministic.
 */
public class NonDeterminismException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String,
    /** What the records say. */
    public val recorded: String,
    /** What the code did on this replay. */
    public val actual: String,
) : StentException(
    "non-deterministic replay of workflow '$workflowName' (run '$runId') at step '$stepId': " +
        "recorded $recorded, but the code now $actual. Workflow code outside steps must make the same calls " +
        "in every replay: read time, random numbers and external state only through steps, now(), random() or randomUuid(); " +
        "to change a workflow with runs in flight, give the new steps new ids",
)

/** A step id was used twice in one run. */
public class DuplicateStepIdException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String,
) : StentException(
    "duplicate step id '$stepId' in workflow '$workflowName' (run '$runId'): step ids must be unique within a run; " +
        "in a loop give each iteration its own id, such as '$stepId-1', '$stepId-2'",
)

/** Workflow code used the API in a way it cannot work, e.g. a step inside a step. */
public class WorkflowMisuseException(
    override val runId: String,
    override val workflowName: String,
    override val stepId: String?,
    message: String,
) : StentException(message)

/** Why a [PayloadException] was raised. */
public enum class PayloadProblem {
    /** The codec could not encode the value. */
    NOT_ENCODABLE,

    /** Stored text could not be decoded into the expected type. */
    NOT_DECODABLE,

    /** The encoded value is larger than the configured limit. */
    TOO_LARGE,
}

/**
 * A value could not be stored or read back: it did not encode, it did not decode, or it was too
 * large. Raised at the call that produced the value; nothing is stored in its place.
 */
public class PayloadException(
    /** What went wrong. */
    public val problem: PayloadProblem,
    /** What the payload is, e.g. "result of step 'charge'" or "input". */
    public val what: String,
    override val runId: String?,
    override val workflowName: String?,
    override val stepId: String?,
    detail: String,
    cause: Throwable? = null,
) : StentException(
    buildString {
        append(
            when (problem) {
                PayloadProblem.NOT_ENCODABLE -> "cannot encode the $what"
                PayloadProblem.NOT_DECODABLE -> "cannot decode the stored $what"
                PayloadProblem.TOO_LARGE -> "the $what is too large"
            },
        )
        if (workflowName != null) append(" of workflow '").append(workflowName).append('\'')
        if (runId != null) append(" (run '").append(runId).append("')")
        append(": ").append(detail)
    },
    cause,
)

/** A client call named a run that does not exist. */
public class UnknownRunException(
    override val runId: String,
    detail: String,
) : StentException("no run with id '$runId': $detail")

/** `await(timeout)` gave up before the run finished. The run itself goes on. */
public class AwaitTimeoutException(
    override val runId: String,
    /** How long the caller waited. */
    @get:JvmSynthetic public val timeout: Duration,
) : StentException("run '$runId' did not finish within $timeout; it is still going, await it again or describe it to see where it is")

/** The database failed or went away; the message names the operation. Committed runs and checkpoints are never lost by it. */
public class StentStoreException(message: String, cause: Throwable?) : StentException(message, cause)

/**
 * The database has no Stent tables, or tables of another version, and the store was opened without
 * migrating (`StentOptions(migrate = false)`): [found] is its schema version (null: no Stent tables),
 * [expected] this Stent's.
 */
public class StentSchemaException(
    public val found: Int?,
    public val expected: Int,
    detail: String,
) : StentException(detail)

/** Misconfiguration found at start-up or registration, e.g. two workflows with one name. */
public class StentConfigurationException(message: String) : StentException(message)

/** `start` named an id that exists for a different workflow. */
public class RunConflictException(
    override val runId: String,
    /** The workflow of the existing run. */
    public val existingWorkflow: String,
    /** The workflow the caller asked for. */
    public val requestedWorkflow: String,
) : StentException(
    "run '$runId' exists already as workflow '$existingWorkflow', not '$requestedWorkflow': " +
        "run ids are unique across workflows; choose another id",
)

/** An operation that needs a finished run (delete) was asked of one that has not finished. */
public class RunNotFinishedException(
    override val runId: String,
    /** The run's status when asked. */
    public val status: RunStatus,
    /** What was asked: "delete". */
    operation: String,
) : StentException("cannot $operation run '$runId': it is $status, not finished; cancel it first (client.cancel) and $operation it once it is CANCELLED")

/** No schedule with this name exists. */
public class UnknownScheduleException(
    /** The name asked for. */
    public val scheduleName: String,
) : StentException("no schedule named '$scheduleName'; list them with client.listSchedules() and check the name")

/** Throws an [InvalidArgumentException] with [message] unless [valid]: Stent's `require`. */
@InternalStentApi
public inline fun requireArgument(valid: Boolean, message: () -> String) {
    if (!valid) throw InvalidArgumentException(message())
}
