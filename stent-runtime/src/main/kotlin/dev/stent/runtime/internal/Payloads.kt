package dev.stent.runtime.internal

import dev.stent.Codec
import dev.stent.Codecs
import dev.stent.Failure
import dev.stent.PayloadException
import dev.stent.PayloadProblem
import kotlin.coroutines.cancellation.CancellationException

/** Where a payload belongs, for error messages. */
internal class PayloadSite(val what: String, val runId: String?, val workflowName: String?, val stepId: String? = null)

/** Encodes with [codec], checking round-trip failures and the size limit; errors name the [site]. */
internal fun <T> encodePayload(codec: Codec<T>, value: T, maxBytes: Int, site: PayloadSite): String {
    val text = try {
        codec.encode(value)
    } catch (e: CancellationException) {
        throw e
    } catch (e: Exception) {
        throw PayloadException(
            PayloadProblem.NOT_ENCODABLE, site.what, site.runId, site.workflowName, site.stepId,
            "${codec.typeName} value could not be encoded (${e.message}); make the type serializable " +
                "(@Serializable for kotlinx) or pass a codec that can encode it",
            e,
        )
    } catch (e: StackOverflowError) {
        throw PayloadException(
            PayloadProblem.NOT_ENCODABLE, site.what, site.runId, site.workflowName, site.stepId,
            "${codec.typeName} value is nested too deeply to encode (or refers to itself); flatten it",
            e,
        )
    }
    val size = utf8Length(text)
    if (size > maxBytes) {
        throw PayloadException(
            PayloadProblem.TOO_LARGE, site.what, site.runId, site.workflowName, site.stepId,
            "$size bytes encoded, over the limit of $maxBytes bytes (StentOptions.maxPayloadBytes); " +
                "store large data elsewhere and pass a reference, or raise the limit",
        )
    }
    return text
}

internal fun <T> decodePayload(codec: Codec<T>, text: String, site: PayloadSite): T = try {
    codec.decode(text)
} catch (e: CancellationException) {
    throw e
} catch (e: StackOverflowError) {
    throw PayloadException(
        PayloadProblem.NOT_DECODABLE, site.what, site.runId, site.workflowName, site.stepId,
        "the stored ${codec.typeName} is nested too deeply to decode",
        e,
    )
} catch (e: Exception) {
    throw PayloadException(
        PayloadProblem.NOT_DECODABLE, site.what, site.runId, site.workflowName, site.stepId,
        "'${text.take(200)}' is not a valid ${codec.typeName} (${e.message}); the stored data was written by " +
            "other code or a changed type: keep payload types compatible, or start a new run",
        e,
    )
}

internal fun encodeFailure(failure: Failure): String = Codecs.json.encodeToString(Failure.serializer(), failure)

internal fun decodeFailure(text: String?): Failure? = text?.let {
    try {
        Codecs.json.decodeFromString(Failure.serializer(), it)
    } catch (e: Exception) {
        Failure("unknown", "undecodable stored failure: ${it.take(200)}")
    }
}

private fun utf8Length(s: String): Int {
    var n = 0
    var i = 0
    while (i < s.length) {
        val c = s[i]
        n += when {
            c.code < 0x80 -> 1
            c.code < 0x800 -> 2
            Character.isHighSurrogate(c) -> { i++; 4 }
            else -> 3
        }
        i++
    }
    return n
}
