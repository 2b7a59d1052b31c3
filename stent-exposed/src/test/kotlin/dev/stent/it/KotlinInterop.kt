package dev.stent.it

import dev.stent.step
import dev.stent.workflow
import kotlinx.serialization.Serializable

@Serializable
data class GreetingIn(val name: String, val times: Int)

@Serializable
data class GreetingOut(val text: String, val times: Int)

/** Kotlin-defined workflows that Java tests start by name. */
object KotlinInterop {
    val greet = workflow<GreetingIn, GreetingOut>("kotlin-greet") { g ->
        GreetingOut(step("text") { "hello ${g.name}" }, g.times)
    }
}
