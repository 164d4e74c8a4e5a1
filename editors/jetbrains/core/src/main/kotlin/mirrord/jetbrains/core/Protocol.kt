// The custom requests of `docs/ide-protocol.md` as Kotlin types: what the plugin sends and
// what it gets back. Results are decoded by hand from JSON so that a field the sidecar left out
// is a `ProtocolException` naming it, not a null inside a non-null Kotlin property.
package mirrord.jetbrains.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive

/** The JSON-RPC methods of the sidecar that this client uses. */
object Methods {
    const val SCHEMA = "mirrord/schema"
    const val LIST_TARGETS = "mirrord/listTargets"
    const val VERIFY_CONFIG = "mirrord/verifyConfig"
    const val PATCH_LAUNCH_CONFIG = "mirrord/patchLaunchConfig"
    const val END_SESSION = "mirrord/endSession"
    const val SESSION_EVENT = "mirrord/sessionEvent"
    const val PROGRESS = "$/progress"
    const val CREATE_PROGRESS = "window/workDoneProgress/create"

    /** The custom requests the plugin cannot work without (checked against `initialize`). */
    val REQUIRED_REQUESTS = listOf(LIST_TARGETS, VERIFY_CONFIG, PATCH_LAUNCH_CONFIG, END_SESSION)
}

/** A response that does not have the shape `docs/ide-protocol.md` promises. */
class ProtocolException(message: String) : RuntimeException(message)

/** Parameters of `mirrord/listTargets`; every field is optional. */
data class ListTargetsParams(
    val kinds: List<String>? = null,
    val namespace: String? = null,
    val configPath: String? = null,
    /** The project folder whose recently used targets the sidecar lists first. */
    val workspaceFolder: String? = null,
) {
    fun toJson(): JsonObject = JsonObject().apply {
        kinds?.let { add("kinds", stringArray(it)) }
        namespace?.let { addProperty("namespace", it) }
        configPath?.let { addProperty("configPath", it) }
        workspaceFolder?.let { addProperty("workspaceFolder", it) }
    }
}

/** One target a session can use. */
data class TargetInfo(
    val path: String,
    val kind: String,
    val namespace: String?,
    val available: Boolean,
    val detail: String,
) {
    companion object {
        internal fun fromJson(target: Fields) = TargetInfo(
            path = target.string("path"),
            kind = target.string("kind"),
            namespace = target.optionalString("namespace"),
            available = target.boolean("available"),
            detail = target.string("detail"),
        )
    }
}

/** An entry that stands for a group's targets: picking it lists [kinds] on their own. */
data class MoreTargets(val label: String, val detail: String, val kinds: List<String>)

/** One titled group of the picker, in the sidecar's order. */
data class TargetGroup(val id: String, val title: String, val targets: List<TargetInfo>, val more: MoreTargets?)

/** Result of `mirrord/listTargets`: the picker's groups in display order. */
data class TargetList(
    val groups: List<TargetGroup>,
    val currentNamespace: String?,
    val namespaces: List<String>,
) {
    /** Every target of every group, in display order. */
    val targets: List<TargetInfo> get() = groups.flatMap { it.targets }

    companion object {
        fun fromJson(json: JsonElement?): TargetList {
            val result = Fields(json, Methods.LIST_TARGETS)
            return TargetList(
                groups = result.objects("groups").map { group ->
                    TargetGroup(
                        id = group.string("id"),
                        title = group.string("title"),
                        targets = group.objects("targets").map(TargetInfo::fromJson),
                        more = group.optionalObject("more")?.let { Fields(it, "${Methods.LIST_TARGETS}.more") }?.let { more ->
                            MoreTargets(more.string("label"), more.string("detail"), more.strings("kinds"))
                        },
                    )
                },
                currentNamespace = result.optionalString("currentNamespace"),
                namespaces = result.strings("namespaces"),
            )
        }
    }
}

/** Parameters of `mirrord/verifyConfig`: a document by `uri`, or a `text` with its `format`. */
data class VerifyConfigParams(val uri: String? = null, val text: String? = null, val format: String? = null) {
    fun toJson(): JsonObject = JsonObject().apply {
        uri?.let { addProperty("uri", it) }
        text?.let { addProperty("text", it) }
        format?.let { addProperty("format", it) }
    }
}

/** A position in a config file (LSP: zero-based line and UTF-16 character). */
data class Position(val line: Int, val character: Int)

/** One problem in a config file, as `mirrord verify-config` reports it. */
data class ConfigDiagnostic(
    val severity: String,
    val message: String,
    val path: String,
    val start: Position,
    val end: Position,
    val replacement: String?,
) {
    val isError: Boolean get() = severity == "error"

    companion object {
        internal fun fromJson(fields: Fields): ConfigDiagnostic {
            val range = fields.obj("range")
            val start = range.obj("start")
            val end = range.obj("end")
            return ConfigDiagnostic(
                severity = fields.string("severity"),
                message = fields.string("message"),
                path = fields.string("path"),
                start = Position(start.int("line"), start.int("character")),
                end = Position(end.int("line"), end.int("character")),
                replacement = fields.optionalString("replacement"),
            )
        }
    }
}

/** Result of `mirrord/verifyConfig`. `config` is the resolved config when valid. */
data class VerifyConfigResult(val valid: Boolean, val diagnostics: List<ConfigDiagnostic>, val config: JsonObject?) {
    companion object {
        fun fromJson(json: JsonElement?): VerifyConfigResult {
            val result = Fields(json, Methods.VERIFY_CONFIG)
            return VerifyConfigResult(
                valid = result.boolean("valid"),
                diagnostics = result.objects("diagnostics").map(ConfigDiagnostic::fromJson),
                config = result.optionalObject("config"),
            )
        }
    }
}

/**
 * Parameters of `mirrord/patchLaunchConfig`. [launchConfig] is `{type, request, env, …}`: the
 * shape of a VS Code launch configuration, which the sidecar also takes from JetBrains.
 */
data class PatchLaunchConfigParams(
    val launchConfig: JsonObject,
    val workspaceFolder: String,
    val configPath: String? = null,
    val target: String? = null,
    val workDoneToken: String? = null,
    val ide: String = "jetbrains",
) {
    fun toJson(): JsonObject = JsonObject().apply {
        add("launchConfig", launchConfig.deepCopy())
        addProperty("workspaceFolder", workspaceFolder)
        configPath?.let { addProperty("configPath", it) }
        target?.let { addProperty("target", it) }
        addProperty("ide", ide)
        workDoneToken?.let { addProperty("workDoneToken", it) }
    }
}

/** Result of `mirrord/patchLaunchConfig`. */
data class PatchLaunchConfigResult(
    val launchConfig: JsonObject,
    /** `null` when mirrord does not apply to this configuration (the reason is in [warnings]). */
    val sessionId: String?,
    /** The session's target path. */
    val target: String?,
    /**
     * The debuggee's environment as the run must change it, final values decided by the sidecar
     * (`LD_PRELOAD` included): a value to set, or `null` for a variable to remove.
     */
    val environment: Map<String, String?>,
    val warnings: List<String>,
) {
    companion object {
        fun fromJson(json: JsonElement?): PatchLaunchConfigResult {
            val result = Fields(json, Methods.PATCH_LAUNCH_CONFIG)
            val environment = result.optionalObject("environment")?.entrySet()?.associate { (name, value) ->
                name to when {
                    value.isJsonNull -> null
                    value.isJsonPrimitive && value.asJsonPrimitive.isString -> value.asString
                    else -> throw ProtocolException("${Methods.PATCH_LAUNCH_CONFIG}: `environment.$name` is not a string")
                }
            }.orEmpty()
            return PatchLaunchConfigResult(
                launchConfig = result.obj("launchConfig").json,
                sessionId = result.optionalString("sessionId"),
                target = result.optionalString("target"),
                environment = environment,
                warnings = result.strings("warnings"),
            )
        }
    }
}

/** Result of `mirrord/endSession`: `ended` is false when the session had already ended. */
data class EndSessionResult(val ended: Boolean) {
    companion object {
        fun fromJson(json: JsonElement?): EndSessionResult = EndSessionResult(Fields(json, Methods.END_SESSION).boolean("ended"))
    }
}

/** `mirrord/sessionEvent`: something happened to a session (`agentLost`, `ended`). */
data class SessionEvent(val sessionId: String, val kind: String, val message: String) {
    companion object {
        const val AGENT_LOST = "agentLost"
        const val ENDED = "ended"

        fun fromJson(json: JsonElement?): SessionEvent {
            val event = Fields(json, Methods.SESSION_EVENT)
            return SessionEvent(event.string("sessionId"), event.string("kind"), event.string("message"))
        }
    }
}

/** What `initialize` said about the sidecar: `capabilities.experimental.mirrord`. */
data class SidecarInfo(val version: String, val requests: List<String>, val notifications: List<String>) {
    /** The requests this plugin needs that this sidecar does not serve. */
    val missingRequests: List<String> get() = Methods.REQUIRED_REQUESTS.filterNot { it in requests }

    companion object {
        fun fromInitializeResult(json: JsonElement?): SidecarInfo {
            val mirrord = Fields(json, "initialize").obj("capabilities").obj("experimental").obj("mirrord")
            return SidecarInfo(mirrord.string("version"), mirrord.strings("requests"), mirrord.strings("notifications"))
        }
    }
}

/** The error codes of the custom requests (`docs/ide-protocol.md`, "Error codes"). */
enum class SidecarErrorCode(val code: Int) {
    CONFIG_INVALID(-32010),
    CONFIG_UNREADABLE(-32011),
    PATH_OUTSIDE_WORKSPACE(-32012),
    TARGET_REQUIRED(-32013),
    SESSION_FAILED(-32014),
    DOCUMENT_TOO_LARGE(-32015),
    TARGETS_FAILED(-32016),
    INTERNAL_PANIC(-32099),
    REQUEST_CANCELLED(-32800),
    ;

    companion object {
        fun of(code: Int): SidecarErrorCode? = entries.firstOrNull { it.code == code }
    }
}

/** A JSON-RPC error response of the sidecar. */
class SidecarException(val method: String, val code: Int, message: String, val data: JsonElement?) :
    RuntimeException("$method failed ($code): $message") {
    val errorCode: SidecarErrorCode? get() = SidecarErrorCode.of(code)
    val reason: String = message

    /** `data.diagnostics` of a `ConfigInvalid` error (empty for other errors). */
    val diagnostics: List<ConfigDiagnostic>
        get() = (data as? JsonObject)?.takeIf { it.has("diagnostics") }
            ?.let { Fields(it, method).objects("diagnostics").map(ConfigDiagnostic::fromJson) }.orEmpty()

    /** `data.configPath` of a `ConfigInvalid` error. */
    val configPath: String? get() = (data as? JsonObject)?.let { Fields(it, method).optionalString("configPath") }

    /** `data.log` of a `SessionFailed` error: the log file that says more, which "Show logs" opens. */
    val log: String?
        get() = (data as? JsonObject)?.takeIf { errorCode == SidecarErrorCode.SESSION_FAILED }
            ?.let { Fields(it, method).optionalString("log") }
}

internal fun stringArray(items: List<String>): JsonArray = JsonArray().apply { items.forEach { add(it) } }

/** Typed access to a JSON object that reports missing fields with their path. */
internal class Fields(element: JsonElement?, private val where: String) {
    val json: JsonObject = when {
        element != null && element.isJsonObject -> element.asJsonObject
        else -> throw ProtocolException("$where: expected an object, got ${element ?: JsonNull.INSTANCE}")
    }

    private fun fail(name: String, what: String): Nothing = throw ProtocolException("$where: `$name` is missing or not $what")

    private fun primitive(name: String): JsonPrimitive? = json.get(name)?.takeIf { it.isJsonPrimitive }?.asJsonPrimitive

    fun string(name: String): String = primitive(name)?.takeIf { it.isString }?.asString ?: fail(name, "a string")

    fun optionalString(name: String): String? {
        val value = json.get(name)
        if (value == null || value.isJsonNull) return null
        return string(name)
    }

    fun boolean(name: String): Boolean = primitive(name)?.takeIf { it.isBoolean }?.asBoolean ?: fail(name, "a boolean")

    fun int(name: String): Int = primitive(name)?.takeIf { it.isNumber }?.asInt ?: fail(name, "a number")

    fun obj(name: String): Fields {
        val value = json.get(name)?.takeIf { it.isJsonObject } ?: fail(name, "an object")
        return Fields(value, "$where.$name")
    }

    fun optionalObject(name: String): JsonObject? = json.get(name)?.takeIf { it.isJsonObject }?.asJsonObject

    private fun array(name: String): JsonArray = json.get(name)?.takeIf { it.isJsonArray }?.asJsonArray ?: fail(name, "an array")

    fun strings(name: String): List<String> = array(name).mapIndexed { index, item ->
        item.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isString }?.asString ?: fail("$name[$index]", "a string")
    }

    fun objects(name: String): List<Fields> = array(name).mapIndexed { index, item -> Fields(item, "$where.$name[$index]") }
}
