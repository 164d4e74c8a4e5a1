// The JSON-RPC client of one `mirrord ide` process, on LSP4J's jsonrpc library: the `initialize`
// handshake, one typed method per custom request, and the messages the sidecar sends on its own
// (`$/progress`, `window/workDoneProgress/create`, `mirrord/sessionEvent`, log messages).
package mirrord.jetbrains.core

import com.google.gson.Gson
import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.TypeAdapter
import com.google.gson.TypeAdapterFactory
import com.google.gson.reflect.TypeToken
import com.google.gson.stream.JsonReader
import com.google.gson.stream.JsonWriter
import org.eclipse.lsp4j.jsonrpc.Launcher
import org.eclipse.lsp4j.jsonrpc.ResponseErrorException
import org.eclipse.lsp4j.jsonrpc.messages.Message
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest
import java.io.InputStream
import java.io.OutputStream
import java.nio.file.Path
import java.util.concurrent.CompletableFuture
import java.util.concurrent.CompletionException
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.Future
import java.util.concurrent.atomic.AtomicLong

/** What the sidecar tells the plugin without being asked. Called on the reader thread. */
interface SidecarEvents {
    fun onSessionEvent(event: SessionEvent) {}

    /** `window/logMessage` and `window/showMessage` (LSP message types: 1 error … 4 log). */
    fun onMessage(type: Int, message: String, show: Boolean) {}

    /** A message from the sidecar that could not be handled (a bug on one side or the other). */
    fun onProtocolError(error: Throwable) {}
}

/** Which sidecar answered and what it said about itself. */
data class InitializeOptions(
    val workspaceFolder: Path?,
    /** The sidecar's file watcher is for config files open in an LSP client; this client has none. */
    val watchFiles: Boolean = false,
    val clientName: String = "mirrord-jetbrains",
)

/**
 * A connected sidecar. Requests return futures that fail with [SidecarException] for a JSON-RPC
 * error response and [ProtocolException] for a result of the wrong shape; cancelling a future
 * sends `$/cancelRequest`.
 */
class SidecarClient private constructor(
    private val events: SidecarEvents,
    val progress: ProgressTracker,
) : AutoCloseable {
    private lateinit var launcher: Launcher<Any>
    private lateinit var listening: Future<Void>
    private lateinit var executor: ExecutorService
    private val nextToken = AtomicLong(1)
    private val openSessions = ConcurrentHashMap.newKeySet<String>()
    private val pending = ConcurrentHashMap.newKeySet<CompletableFuture<JsonElement?>>()

    /** Completes when the sidecar's output ended (it exited or closed stdout). */
    val disconnected: CompletableFuture<Unit> = CompletableFuture<Unit>().also { done ->
        done.whenComplete { _, _ ->
            pending.forEach { it.completeExceptionally(SidecarUnavailableException("the sidecar exited before answering")) }
        }
    }

    /** Sessions this client started that have not ended (as far as it was told). */
    fun openSessions(): Set<String> = openSessions.toSet()

    /** A fresh `workDoneToken` for a request of this client. */
    fun newProgressToken(): ProgressToken = ProgressToken("mirrord-jetbrains-${nextToken.getAndIncrement()}")

    /** `initialize` then `initialized`. */
    fun initialize(options: InitializeOptions): CompletableFuture<SidecarInfo> {
        val params = JsonObject().apply {
            addProperty("processId", ProcessHandle.current().pid())
            add("clientInfo", JsonObject().apply { addProperty("name", options.clientName) })
            options.workspaceFolder?.let { folder ->
                val uri = folder.toAbsolutePath().toUri().toString().removeSuffix("/")
                addProperty("rootUri", uri)
                add(
                    "workspaceFolders",
                    JsonArray().apply {
                        add(JsonObject().apply {
                            addProperty("uri", uri)
                            addProperty("name", folder.fileName?.toString() ?: uri)
                        })
                    },
                )
            }
            add("capabilities", JsonObject().apply {
                add("window", JsonObject().apply { addProperty("workDoneProgress", true) })
            })
            add("initializationOptions", JsonObject().apply { addProperty("watchFiles", options.watchFiles) })
        }
        return request("initialize", params).thenApply { result ->
            val info = SidecarInfo.fromInitializeResult(result)
            launcher.remoteEndpoint.notify("initialized", JsonObject())
            info
        }
    }

    fun schema(): CompletableFuture<JsonObject> = request(Methods.SCHEMA, null).thenApply { result ->
        result?.takeIf { it.isJsonObject }?.asJsonObject ?: throw ProtocolException("${Methods.SCHEMA}: the schema is not an object")
    }

    fun listTargets(params: ListTargetsParams = ListTargetsParams()): CompletableFuture<TargetList> =
        request(Methods.LIST_TARGETS, params.toJson()).thenApply(TargetList::fromJson)

    fun verifyConfig(params: VerifyConfigParams): CompletableFuture<VerifyConfigResult> =
        request(Methods.VERIFY_CONFIG, params.toJson()).thenApply(VerifyConfigResult::fromJson)

    /** Starts a session; progress arrives on `params.workDoneToken` (see [newProgressToken]). */
    fun patchLaunchConfig(params: PatchLaunchConfigParams): CompletableFuture<PatchLaunchConfigResult> {
        val response = request(Methods.PATCH_LAUNCH_CONFIG, params.toJson())
        val decoded = response.thenApply { json ->
            PatchLaunchConfigResult.fromJson(json).also { result -> result.sessionId?.let(openSessions::add) }
        }
        // Cancelling what the caller holds must cancel the request itself ($/cancelRequest).
        decoded.whenComplete { _, _ -> if (decoded.isCancelled) response.cancel(true) }
        return decoded
    }

    fun endSession(sessionId: String): CompletableFuture<EndSessionResult> {
        val params = JsonObject().apply { addProperty("sessionId", sessionId) }
        return request(Methods.END_SESSION, params).thenApply { json ->
            EndSessionResult.fromJson(json).also { openSessions.remove(sessionId) }
        }
    }

    /** `shutdown` then `exit`: the sidecar ends its sessions and exits. */
    fun shutdown(): CompletableFuture<Unit> = request("shutdown", null).thenApply {
        launcher.remoteEndpoint.notify("exit", null)
    }

    /** Sends any request: [params] `null` omits the field. Errors become [SidecarException]. */
    fun request(method: String, params: JsonElement?): CompletableFuture<JsonElement?> {
        if (disconnected.isDone) {
            return CompletableFuture.failedFuture(SidecarUnavailableException("the sidecar is not running"))
        }
        val raw = launcher.remoteEndpoint.request(method, params)
        val mapped = CompletableFuture<JsonElement?>()
        raw.whenComplete { result, error ->
            when (val cause = if (error is CompletionException) error.cause ?: error else error) {
                null -> mapped.complete(result as JsonElement?)
                is ResponseErrorException -> mapped.completeExceptionally(
                    cause.responseError.let { SidecarException(method, it.code, it.message ?: "", it.data as? JsonElement) },
                )
                else -> mapped.completeExceptionally(cause)
            }
        }
        pending += mapped
        mapped.whenComplete { _, _ ->
            pending -= mapped
            if (mapped.isCancelled) raw.cancel(true)
        }
        if (disconnected.isDone) mapped.completeExceptionally(SidecarUnavailableException("the sidecar exited before answering $method"))
        return mapped
    }

    override fun close() {
        listening.cancel(true)
        executor.shutdownNow()
        disconnected.complete(Unit)
    }

    /** The methods the sidecar calls on this client (found by LSP4J through the annotations). */
    inner class Endpoint {
        @JsonNotification(Methods.PROGRESS)
        fun progress(params: JsonObject) = guarded { progress.onProgress(params) }

        @JsonRequest(Methods.CREATE_PROGRESS)
        fun createProgress(params: JsonObject): CompletableFuture<Any?> {
            progress.onCreate(params)
            return CompletableFuture.completedFuture(null)
        }

        @JsonNotification(Methods.SESSION_EVENT)
        fun sessionEvent(params: JsonObject) = guarded {
            val event = SessionEvent.fromJson(params)
            if (event.kind == SessionEvent.ENDED) openSessions.remove(event.sessionId)
            events.onSessionEvent(event)
        }

        @JsonNotification("window/logMessage")
        fun logMessage(params: JsonObject) = guarded { message(params, show = false) }

        @JsonNotification("window/showMessage")
        fun showMessage(params: JsonObject) = guarded { message(params, show = true) }

        /** Diagnostics are for LSP clients with open documents; this client opens none. */
        @JsonNotification("textDocument/publishDiagnostics")
        fun publishDiagnostics(@Suppress("UNUSED_PARAMETER") params: JsonObject) = Unit

        private fun message(params: JsonObject, show: Boolean) {
            val fields = Fields(params, if (show) "window/showMessage" else "window/logMessage")
            events.onMessage(fields.int("type"), fields.string("message"), show)
        }

        private fun guarded(action: () -> Unit) {
            try {
                action()
            } catch (error: RuntimeException) {
                events.onProtocolError(error)
            }
        }
    }

    companion object {
        /**
         * Connects to a sidecar through its stdout ([input]) and stdin ([output]). Nothing is
         * sent until [initialize].
         */
        fun connect(input: InputStream, output: OutputStream, events: SidecarEvents = object : SidecarEvents {}): SidecarClient {
            val client = SidecarClient(events, ProgressTracker())
            client.executor = Executors.newCachedThreadPool { runnable ->
                Thread(runnable, "mirrord-sidecar-client").apply { isDaemon = true }
            }
            client.launcher = Launcher.Builder<Any>()
                .setLocalService(client.Endpoint())
                .setRemoteInterface(SidecarRemote::class.java)
                .setInput(input)
                .setOutput(output)
                .setExecutorService(client.executor)
                .configureGson { gson -> gson.registerTypeAdapterFactory(OmitNullParams) }
                .create()
            client.listening = client.launcher.startListening()
            client.executor.execute {
                try {
                    client.listening.get()
                } catch (_: Exception) {
                    // Cancelled by close(), or the stream failed: either way the sidecar is gone.
                }
                client.disconnected.complete(Unit)
            }
            return client
        }
    }
}

/** The sidecar is not running (it exited, failed to start, or the plugin gave up restarting it). */
class SidecarUnavailableException(message: String, cause: Throwable? = null) : RuntimeException(message, cause)

/**
 * The requests this client sends. Requests go through `RemoteEndpoint.request`; these
 * declarations only tell LSP4J the result type (JSON), without which it turns every result of a
 * method it does not know into null.
 */
internal interface SidecarRemote {
    @JsonRequest("initialize")
    fun initialize(params: JsonObject): CompletableFuture<JsonElement>

    @JsonRequest("shutdown")
    fun shutdown(): CompletableFuture<JsonElement>

    @JsonRequest(Methods.SCHEMA)
    fun schema(): CompletableFuture<JsonElement>

    @JsonRequest(Methods.LIST_TARGETS)
    fun listTargets(params: JsonObject): CompletableFuture<JsonElement>

    @JsonRequest(Methods.VERIFY_CONFIG)
    fun verifyConfig(params: JsonObject): CompletableFuture<JsonElement>

    @JsonRequest(Methods.PATCH_LAUNCH_CONFIG)
    fun patchLaunchConfig(params: JsonObject): CompletableFuture<JsonElement>

    @JsonRequest(Methods.END_SESSION)
    fun endSession(params: JsonObject): CompletableFuture<JsonElement>
}

/**
 * LSP4J writes `"params": null` for a request without parameters; the protocol says to omit the
 * field (`mirrord/schema`, `shutdown`, `exit`). Also keeps JSON nulls inside messages (a
 * `result: null`, an `env` value `null`), which Gson would otherwise drop from objects.
 */
private object OmitNullParams : TypeAdapterFactory {
    override fun <T> create(gson: Gson, type: TypeToken<T>): TypeAdapter<T>? {
        if (!Message::class.java.isAssignableFrom(type.rawType)) return null
        val delegate = gson.getDelegateAdapter(this, type)
        val elements = gson.getAdapter(JsonElement::class.java)
        return object : TypeAdapter<T>() {
            override fun write(out: JsonWriter, value: T) {
                val tree = delegate.toJsonTree(value)
                if (tree.isJsonObject && tree.asJsonObject.get("params")?.isJsonNull == true) tree.asJsonObject.remove("params")
                val serializeNulls = out.serializeNulls
                out.serializeNulls = true
                elements.write(out, tree)
                out.serializeNulls = serializeNulls
            }

            override fun read(reader: JsonReader): T = delegate.read(reader)
        }
    }
}
