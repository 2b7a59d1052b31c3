package dev.stent

/**
 * Marks a declaration that is public only so Stent's own modules can reach it across module
 * boundaries. It is not part of the user API and may change without notice.
 */
@RequiresOptIn(
    message = "This is Stent's internal API: it may change without notice. Use the public API instead.",
    level = RequiresOptIn.Level.ERROR,
)
@Retention(AnnotationRetention.BINARY)
@Target(AnnotationTarget.CLASS, AnnotationTarget.FUNCTION, AnnotationTarget.PROPERTY, AnnotationTarget.CONSTRUCTOR)
public annotation class InternalStentApi

/** Marks API that works and is tested, but whose shape may still change in a minor release. */
@RequiresOptIn(message = "This Stent API is experimental: its shape may change.", level = RequiresOptIn.Level.WARNING)
@Retention(AnnotationRetention.BINARY)
@Target(AnnotationTarget.CLASS, AnnotationTarget.FUNCTION, AnnotationTarget.PROPERTY)
public annotation class ExperimentalStentApi

/** Keeps `step { }` from being called on an outer scope from inside a step body. */
@DslMarker
public annotation class StentDsl
