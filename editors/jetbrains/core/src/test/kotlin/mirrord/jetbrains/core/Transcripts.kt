// Replaying the recorded sidecar exchanges of tests/ide-transcripts (format in its README): the
// test plays the sidecar, checks that each message the client sends is the next recorded one,
// and answers with the recorded response and notifications.
package mirrord.jetbrains.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.google.gson.JsonPrimitive
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CompletableFuture
import kotlin.concurrent.thread

const val ANY = "\${any}"
const val OPTIONAL = "\${optional}"

class Transcript(val json: JsonObject) {
    val name: String = json.get("name").asString
    val exchanges: List<JsonObject> = json.getAsJsonArray("exchanges").map { it.asJsonObject }

    /** The params of the [index]th recorded request for [method]: the user's input for that action. */
    fun recordedParams(method: String, index: Int = 0): JsonObject =
        exchanges.mapNotNull { it.getAsJsonObject("request") }.filter { it.get("method").asString == method }[index].getAsJsonObject("params")

    /** Writes the recorded workspace files into [workspace]. */
    fun writeFiles(workspace: Path) {
        json.getAsJsonObject("files")?.entrySet()?.forEach { (relative, text) ->
            val file = workspace.resolve(relative)
            Files.createDirectories(file.parent)
            Files.writeString(file, text.asString)
        }
    }

    companion object {
        fun loadAll(dir: Path): List<Transcript> = Files.list(dir).use { files ->
            files.filter { it.toString().endsWith(".json") }.sorted().map { Transcript(JsonParser.parseString(Files.readString(it)).asJsonObject) }.toList()
        }
    }
}

/** `${name}` placeholders inside strings; `${any}` and `${optional}` stay for [compare]. */
fun substitute(value: JsonElement?, variables: Map<String, String>): JsonElement? = when {
    value == null -> null
    value.isJsonPrimitive && value.asJsonPrimitive.isString ->
        JsonPrimitive(Regex("""\$\{(\w+)}""").replace(value.asString) { match -> variables[match.groupValues[1]] ?: match.value })
    value.isJsonArray -> JsonArray().apply { value.asJsonArray.forEach { add(substitute(it, variables)) } }
    value.isJsonObject -> JsonObject().apply { value.asJsonObject.entrySet().forEach { (key, item) -> add(key, substitute(item, variables)) } }
    else -> value
}

/** The differences between [actual] and the recorded [expected] (`exact` or `subset`), as `path: problem`. */
fun compare(actual: JsonElement?, expected: JsonElement?, mode: String, at: String = "$"): List<String> {
    val placeholder = expected?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isString }?.asString
    if (placeholder == ANY || placeholder == OPTIONAL) {
        return if (actual == null && placeholder == ANY) listOf("$at: missing") else emptyList()
    }
    if (expected == null) return if (actual == null) emptyList() else listOf("$at: unexpected $actual")
    if (actual == null) return listOf("$at: missing")
    return when {
        expected.isJsonObject && actual.isJsonObject -> {
            val problems = expected.asJsonObject.entrySet().flatMap { (key, item) -> compare(actual.asJsonObject.get(key), item, mode, "$at.$key") }
            val extra = if (mode == "exact") actual.asJsonObject.keySet().filterNot(expected.asJsonObject::has).map { "$at.$it: unexpected" } else emptyList()
            problems + extra
        }
        expected.isJsonArray && actual.isJsonArray -> {
            val (want, got) = expected.asJsonArray to actual.asJsonArray
            if (want.size() != got.size()) {
                listOf("$at: expected ${want.size()} elements, got ${got.size()}: $got")
            } else {
                (0 until want.size()).flatMap { compare(got[it], want[it], mode, "$at[$it]") }
            }
        }
        expected == actual -> emptyList()
        else -> listOf("$at: expected $expected, got $actual")
    }
}

/**
 * Plays the sidecar of [transcript] on [process]: every client message must be the next recorded
 * exchange. [finished] completes after `exit` (then the fake process exits) or fails with the
 * first mismatch.
 */
class Replayer(private val transcript: Transcript, private val process: FakeProcess, workspace: Path, ide: String = "jetbrains") {
    private val variables = mapOf(
        "workspaceFolder" to workspace.toString(),
        "workspaceFolderUri" to workspace.toUri().toString().removeSuffix("/"),
        "ide" to ide,
    )
    val finished = CompletableFuture<Unit>()

    fun start(): Replayer {
        thread(isDaemon = true, name = "replay-${transcript.name}") {
            try {
                transcript.exchanges.forEachIndexed { index, exchange -> replay(index, exchange) }
                process.exitWith(0)
                finished.complete(Unit)
            } catch (error: Throwable) {
                finished.completeExceptionally(error)
                process.exitWith(1)
            }
        }
        return this
    }

    private fun replay(index: Int, exchange: JsonObject) {
        val recorded = exchange.getAsJsonObject("request") ?: exchange.getAsJsonObject("notification")
        val isRequest = exchange.has("request")
        val message = process.wire.receive()
        val where = "${transcript.name}, exchange $index (${recorded.get("method").asString})"
        check(message.get("method")?.asString == recorded.get("method").asString && message.has("id") == isRequest) {
            "$where: the client sent ${if (message.has("id")) "a request" else "a notification"} $message"
        }
        val mode = exchange.get("requestMatch")?.asString ?: "exact"
        val problems = compare(message.get("params"), substitute(recorded.get("params"), variables), mode, "params")
        check(problems.isEmpty()) { "$where: the client's params differ from the recording:\n${problems.joinToString("\n")}\nsent: $message" }
        if (!isRequest) return

        val token = message.getAsJsonObject("params")?.get("workDoneToken")
        val withToken = if (token != null && token.isJsonPrimitive) variables + ("workDoneToken" to token.asString) else variables
        exchange.getAsJsonArray("notifications")?.forEach { notification ->
            val recordedNotification = notification.asJsonObject
            process.wire.notify(recordedNotification.get("method").asString, substitute(recordedNotification.get("params"), withToken)!!)
        }
        val response = substitute(exchange.getAsJsonObject("response"), variables)!!.asJsonObject
        process.wire.send(JsonObject().apply {
            addProperty("jsonrpc", "2.0")
            add("id", message.get("id"))
            response.entrySet().forEach { (key, value) -> add(key, value) }
        })
    }
}
