package dev.stent.java

import com.fasterxml.jackson.core.type.TypeReference
import com.fasterxml.jackson.databind.DeserializationFeature
import com.fasterxml.jackson.databind.JavaType
import com.fasterxml.jackson.databind.SerializationFeature
import com.fasterxml.jackson.databind.json.JsonMapper
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule
import com.fasterxml.jackson.module.paramnames.ParameterNamesModule
import dev.stent.Codec
import dev.stent.Codecs
import kotlinx.serialization.serializerOrNull

/**
 * Codecs for Java callers. [forClass] picks kotlinx-serialization for Kotlin `@Serializable`
 * classes and Jackson for everything else (records, POJOs, strings, numbers, `java.time`), so a
 * Java team never writes a serializer and a payload reads the same JSON from both languages.
 */
public object JavaCodecs {
    /**
     * The Jackson mapper the Java codecs use: records and parameter names, `java.time` as ISO
     * strings, unknown properties and null primitives rejected (a payload that does not fit is an
     * error, never a silent default).
     */
    @JvmStatic
    internal val mapper: JsonMapper = JsonMapper.builder()
        .addModule(JavaTimeModule())
        .addModule(ParameterNamesModule())
        .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS)
        .disable(SerializationFeature.WRITE_DURATIONS_AS_TIMESTAMPS)
        .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
        .build()

    /** The codec for [type]: kotlinx for Kotlin `@Serializable` classes, Jackson otherwise. */
    @JvmStatic
    public fun <T : Any> forClass(type: Class<T>): Codec<T> {
        if (type.isAnnotationPresent(Metadata::class.java)) {
            val serializer = runCatching { serializerOrNull(type) }.getOrNull()
            @Suppress("UNCHECKED_CAST")
            if (serializer != null) return Codecs.kotlinx(serializer) as Codec<T>
        }
        return jackson(type)
    }

    /** A Jackson codec for [type]. */
    @JvmStatic
    public fun <T> jackson(type: Class<T>): Codec<T> = JacksonCodec(mapper.constructType(type), type.simpleName)

    /** A Jackson codec for a generic type: `JavaCodecs.jackson(new TypeReference<List<Item>>() {})`. */
    @JvmStatic
    public fun <T> jackson(type: TypeReference<T>): Codec<T> = mapper.constructType(type).let { JacksonCodec(it, it.toCanonical()) }
}

private class JacksonCodec<T>(private val type: JavaType, override val typeName: String) : Codec<T> {
    private val reader = JavaCodecs.mapper.readerFor(type)
    private val writer = JavaCodecs.mapper.writerFor(type)
    override fun encode(value: T): String = writer.writeValueAsString(value)
    override fun decode(text: String): T = reader.readValue(text)
}
