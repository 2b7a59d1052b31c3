package dev.stent

import kotlinx.serialization.KSerializer
import kotlinx.serialization.json.Json
import kotlinx.serialization.serializer

/**
 * Turns values of one type into stored text and back.
 *
 * Every input, output, step result and signal payload goes through a codec. A codec must
 * round-trip: `decode(encode(v))` equals `v`. A value it cannot encode is an error at the call
 * that produced it ([PayloadException]), never a lossy string in its place. Stent never uses
 * Java serialization.
 */
public interface Codec<T> {
    /** Encodes [value] as text (JSON for the built-in codecs). Throws on a value it cannot represent. */
    public fun encode(value: T): String

    /** Decodes text produced by [encode]. Throws on text it cannot read. */
    public fun decode(text: String): T

    /** A short human name of the type, used in error messages. */
    public val typeName: String
}

/** Built-in codecs. */
public object Codecs {
    /** The JSON configuration the kotlinx codecs use: unknown keys are an error, defaults are written. */
    public val json: Json = Json {
        encodeDefaults = true
        allowSpecialFloatingPointValues = false
    }

    /** A codec for a kotlinx-serialization type. */
    @JvmStatic
    @JvmOverloads
    public fun <T> kotlinx(serializer: KSerializer<T>, json: Json = Codecs.json): Codec<T> =
        KotlinxCodec(serializer, json)
}

/** The kotlinx-serialization JSON codec for [T]. */
@JvmSynthetic
public inline fun <reified T> codecOf(): Codec<T> = Codecs.kotlinx(serializer<T>())

private class KotlinxCodec<T>(private val serializer: KSerializer<T>, private val json: Json) : Codec<T> {
    override val typeName: String get() = serializer.descriptor.serialName
    override fun encode(value: T): String = json.encodeToString(serializer, value)
    override fun decode(text: String): T = json.decodeFromString(serializer, text)
}
