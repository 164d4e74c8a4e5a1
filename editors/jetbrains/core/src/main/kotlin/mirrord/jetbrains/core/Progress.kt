// `$/progress` from the sidecar: the steps of starting a session (agent, intproxy, …), on a token
// the client passed as `workDoneToken` or one the sidecar created with
// `window/workDoneProgress/create`. Turns the notifications into states the plugin shows.
package mirrord.jetbrains.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList

/** A progress token: LSP allows a string or an integer; both spellings are kept apart. */
data class ProgressToken(val text: String, val numeric: Boolean = false) {
    override fun toString(): String = if (numeric) text else "\"$text\""

    companion object {
        fun of(json: JsonElement?): ProgressToken? {
            val primitive = json?.takeIf { it.isJsonPrimitive }?.asJsonPrimitive ?: return null
            return when {
                primitive.isString -> ProgressToken(primitive.asString)
                primitive.isNumber -> ProgressToken(primitive.asBigInteger.toString(), numeric = true)
                else -> null
            }
        }
    }
}

/** Where one progress stands. */
data class ProgressState(
    val token: ProgressToken,
    val title: String,
    val message: String?,
    /** 0–100 when the sidecar reports it. */
    val percentage: Int?,
    val cancellable: Boolean,
    val done: Boolean,
)

/** Receives every change of a progress. Called on the JSON-RPC reader thread: do not block. */
fun interface ProgressListener {
    fun onProgress(state: ProgressState)
}

/**
 * The progresses the sidecar reports. A `report` or `end` for a token that never began (a lost
 * `begin`) is still shown: a report begins it, an end for an unknown token is ignored.
 */
class ProgressTracker {
    private val states = ConcurrentHashMap<ProgressToken, ProgressState>()
    private val created = ConcurrentHashMap.newKeySet<ProgressToken>()
    private val listeners = CopyOnWriteArrayList<ProgressListener>()
    private val tokenListeners = ConcurrentHashMap<ProgressToken, ProgressListener>()

    /** Listens to every progress. */
    fun addListener(listener: ProgressListener) {
        listeners += listener
    }

    /** Listens to one token (the `workDoneToken` of a request) until its `end`. */
    fun watch(token: ProgressToken, listener: ProgressListener) {
        tokenListeners[token] = listener
    }

    fun unwatch(token: ProgressToken) {
        tokenListeners.remove(token)
    }

    /** Whether [token] began and has not ended. */
    fun hasBegun(token: ProgressToken): Boolean = states.containsKey(token)

    /** Progresses begun and not ended. */
    fun active(): List<ProgressState> = states.values.sortedBy { it.token.text }

    /** Tokens the sidecar created (`window/workDoneProgress/create`) that have not ended. */
    fun created(): Set<ProgressToken> = created.toSet()

    /** `window/workDoneProgress/create`: the sidecar announces a token. */
    fun onCreate(params: JsonObject) {
        val token = ProgressToken.of(params.get("token"))
            ?: throw ProtocolException("${Methods.CREATE_PROGRESS}: `token` is missing or not a string or integer")
        created += token
    }

    /** `$/progress`. Returns the new state, or null when the notification changed nothing. */
    fun onProgress(params: JsonObject): ProgressState? {
        val token = ProgressToken.of(params.get("token"))
            ?: throw ProtocolException("${Methods.PROGRESS}: `token` is missing or not a string or integer")
        val value = Fields(params, Methods.PROGRESS).obj("value")
        val message = value.optionalString("message")
        val percentage = value.json.get("percentage")?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isNumber }?.asInt?.coerceIn(0, 100)
        val cancellable = value.json.get("cancellable")?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isBoolean }?.asBoolean
        val previous = states[token]
        val state = when (val kind = value.string("kind")) {
            "begin" -> ProgressState(token, value.optionalString("title") ?: "mirrord", message, percentage, cancellable ?: false, done = false)
            "report" -> ProgressState(
                token,
                previous?.title ?: "mirrord",
                message ?: previous?.message,
                percentage ?: previous?.percentage,
                cancellable ?: previous?.cancellable ?: false,
                done = false,
            )
            "end" -> previous?.copy(message = message ?: previous.message, done = true) ?: run {
                created -= token
                return null
            }
            else -> throw ProtocolException("${Methods.PROGRESS}: unknown kind `$kind`")
        }
        if (state.done) {
            states.remove(token)
            created -= token
        } else {
            states[token] = state
        }
        tokenListeners[token]?.onProgress(state)
        if (state.done) tokenListeners.remove(token)
        listeners.forEach { it.onProgress(state) }
        return state
    }
}
