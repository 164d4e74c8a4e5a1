package mirrord.jetbrains.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.jupiter.api.Test
import java.nio.file.Files
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * The Kotlin side of the protocol against schema/ide-protocol.json, which `cargo test -p
 * mirrord-ide` generates from the Rust types: method names, error codes, and the fields of every
 * type this client sends or decodes. A field renamed, added or dropped in Rust fails here.
 */
class ProtocolSchemaTest {
    private val schema: JsonObject = JsonParser.parseString(Files.readString(TestPaths.protocolSchema())).asJsonObject
    private val definitions = schema.getAsJsonObject("definitions")

    private fun properties(definition: String): Set<String> =
        definitions.getAsJsonObject(definition)?.getAsJsonObject("properties")?.keySet()
            ?: error("$definition is not an object type of the schema")

    /** The constructor parameters of a Kotlin data class, by name. */
    private fun fields(type: Class<*>): Set<String> =
        type.declaredFields.filterNot { java.lang.reflect.Modifier.isStatic(it.modifiers) }.map { it.name }.toSet()

    @Test
    fun `the methods are the sidecar's`() {
        val requests = schema.getAsJsonObject("requests").keySet()
        val ours = listOf(Methods.SCHEMA, Methods.LIST_TARGETS, Methods.VERIFY_CONFIG, Methods.PATCH_LAUNCH_CONFIG, Methods.END_SESSION)
        assertEquals(requests, ours.toSet())
        assertEquals(setOf(Methods.SESSION_EVENT), schema.getAsJsonObject("notifications").keySet())
    }

    @Test
    fun `the error codes are the sidecar's`() {
        val codes = schema.getAsJsonObject("errorCodes").entrySet().associate { (name, code) -> name to code.asInt }
        val ours = SidecarErrorCode.entries.associate { entry ->
            entry.name.split('_').joinToString("") { part -> part.lowercase().replaceFirstChar(Char::uppercase) } to entry.code
        }
        assertEquals(codes, ours)
    }

    @Test
    fun `the decoded types have the schema's fields`() {
        assertEquals(properties("TargetInfo"), fields(TargetInfo::class.java))
        assertEquals(properties("TargetGroup"), fields(TargetGroup::class.java))
        assertEquals(properties("MoreTargets"), fields(MoreTargets::class.java))
        assertEquals(properties("ListTargetsResult"), fields(TargetList::class.java))
        assertEquals(properties("PatchLaunchConfigResult"), fields(PatchLaunchConfigResult::class.java))
        assertEquals(properties("EndSessionResult"), fields(EndSessionResult::class.java))
        assertEquals(properties("SessionEventParams"), fields(SessionEvent::class.java))
        assertEquals(properties("VerifyConfigResult"), fields(VerifyConfigResult::class.java))
        // The error data the client reads (SidecarException.log, .configPath).
        assertEquals(setOf("log"), properties("SessionFailedData"))
        assertTrue("configPath" in properties("ConfigInvalidData"))
        // The diagnostic keeps its range as two positions.
        assertEquals(properties("ConfigDiagnostic") - "range" + setOf("start", "end"), fields(ConfigDiagnostic::class.java))
    }

    @Test
    fun `what the client sends has only the schema's fields`() {
        val listParams = ListTargetsParams(listOf("pid"), "ns", "c.json", "/w").toJson().keySet()
        assertEquals(properties("ListTargetsParams"), listParams)
        val patch = PatchLaunchConfigParams(JsonObject(), "/w", "c.json", "pid/1", "token").toJson().keySet()
        assertEquals(properties("PatchLaunchConfigParams"), patch)
        val verify = VerifyConfigParams(uri = "file:///x", text = "{}", format = "json").toJson().keySet()
        assertEquals(properties("VerifyConfigParams"), verify)
        assertTrue(schema.getAsJsonObject("definitions").getAsJsonObject("Ide").toString().contains("jetbrains"))
    }
}
