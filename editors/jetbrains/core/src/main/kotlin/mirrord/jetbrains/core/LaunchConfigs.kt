// The launch configuration the plugin sends for each kind of JetBrains run configuration: the
// `{type, request, env, …}` shape of docs/ide-protocol.md, with the debugger `type` whose
// adjustments the sidecar applies (JDWP, pydevd, Delve and the inspector all talk to the IDE
// over loopback).
package mirrord.jetbrains.core

import com.google.gson.JsonArray
import com.google.gson.JsonObject

object LaunchConfigs {
    /** A Java/Kotlin application or JUnit configuration; [vmArgs] may hold `-agentlib:jdwp=…`. */
    fun java(name: String, mainClass: String?, vmArgs: List<String>, environment: Map<String, String>): JsonObject =
        base("java", name, environment).apply {
            mainClass?.let { addProperty("mainClass", it) }
            if (vmArgs.isNotEmpty()) add("vmArgs", strings(vmArgs))
        }

    /** A Python configuration (PyCharm's pydevd connects back to the IDE over loopback). */
    fun python(name: String, program: String?, environment: Map<String, String>): JsonObject =
        base("python", name, environment).apply { program?.let { addProperty("program", it) } }

    /** A Go configuration (GoLand builds with the go toolchain and debugs with Delve). */
    fun go(name: String, program: String?, environment: Map<String, String>): JsonObject =
        base("go", name, environment).apply { program?.let { addProperty("program", it) } }

    /** A Node.js configuration; [runtimeArgs] may hold `--inspect-brk=PORT`. */
    fun node(name: String, program: String?, runtimeArgs: List<String>, environment: Map<String, String>): JsonObject =
        base("node", name, environment).apply {
            program?.let { addProperty("program", it) }
            if (runtimeArgs.isNotEmpty()) add("runtimeArgs", strings(runtimeArgs))
        }

    /** The run configuration's own variables, as sent in a launch configuration's `env`. */
    fun environment(launchConfig: JsonObject): Map<String, String> {
        val env = launchConfig.get("env")?.takeIf { it.isJsonObject }?.asJsonObject ?: return emptyMap()
        return env.entrySet().filter { (_, value) -> value.isJsonPrimitive }.associate { (name, value) -> name to value.asString }
    }

    private fun base(type: String, name: String, environment: Map<String, String>) = JsonObject().apply {
        addProperty("type", type)
        addProperty("request", "launch")
        addProperty("name", name)
        if (environment.isNotEmpty()) {
            add("env", JsonObject().apply { environment.forEach { (key, value) -> addProperty(key, value) } })
        }
    }

    private fun strings(items: List<String>) = JsonArray().apply { items.forEach { add(it) } }
}
