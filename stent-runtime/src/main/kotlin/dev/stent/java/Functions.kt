package dev.stent.java

/** A workflow body written in Java: `(ctx, input) -> { … return output; }`. Runs on a thread made for blocking. */
public fun interface JavaWorkflow<I, O> {
    /** Runs the workflow; see [WorkflowContext] for what is durable. */
    @Throws(Exception::class)
    public fun run(ctx: WorkflowContext, input: I): O
}

/** A step body that returns a value: `() -> payments.authorize(req)`. Runs on a thread made for blocking. */
public fun interface StepSupplier<T> {
    @Throws(Exception::class)
    public fun get(): T
}

/** A step body without a result. */
public fun interface StepAction {
    @Throws(Exception::class)
    public fun run()
}
