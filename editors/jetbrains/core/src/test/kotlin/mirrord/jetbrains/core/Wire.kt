// Test side of the stdio pipe: the sidecar's end of a `Content-Length` framed JSON-RPC
// connection, and a fake sidecar process built on it.
package mirrord.jetbrains.core

import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import java.io.ByteArrayOutputStream
import java.io.InputStream
import java.io.OutputStream
import java.io.PipedInputStream
import java.io.PipedOutputStream
import java.util.concurrent.CompletableFuture
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread

/** How long a test waits for a message before failing (liveness only, never asserted on). */
const val WAIT_SECONDS = 20L

/** The sidecar's end of a connection: reads the client's messages, writes its own. */
class WireEnd(private val fromClient: InputStream, private val toClient: OutputStream) {
    private val received = LinkedBlockingQueue<Result<JsonObject>>()

    init {
        thread(isDaemon = true, name = "wire-end-reader") {
            try {
                while (true) received.put(Result.success(readFrame(fromClient) ?: break))
            } catch (error: Exception) {
                received.put(Result.failure(error))
            }
            received.put(Result.failure(IllegalStateException("the client closed the connection")))
        }
    }

    /** The client's next message. */
    fun receive(): JsonObject =
        received.poll(WAIT_SECONDS, TimeUnit.SECONDS)?.getOrThrow() ?: error("no message from the client in $WAIT_SECONDS s")

    fun send(message: JsonObject) {
        val body = message.toString().toByteArray(Charsets.UTF_8)
        synchronized(toClient) {
            toClient.write("Content-Length: ${body.size}\r\n\r\n".toByteArray(Charsets.US_ASCII))
            toClient.write(body)
            toClient.flush()
        }
    }

    fun respond(id: JsonElement, result: JsonElement?) = send(JsonObject().apply {
        addProperty("jsonrpc", "2.0")
        add("id", id)
        add("result", result ?: JsonNull.INSTANCE)
    })

    fun respondError(id: JsonElement, code: Int, message: String, data: JsonElement? = null) = send(JsonObject().apply {
        addProperty("jsonrpc", "2.0")
        add("id", id)
        add("error", JsonObject().apply {
            addProperty("code", code)
            addProperty("message", message)
            data?.let { add("data", it) }
        })
    })

    fun notify(method: String, params: JsonElement) = send(JsonObject().apply {
        addProperty("jsonrpc", "2.0")
        addProperty("method", method)
        add("params", params)
    })

    fun request(id: Int, method: String, params: JsonElement) = send(JsonObject().apply {
        addProperty("jsonrpc", "2.0")
        addProperty("id", id)
        addProperty("method", method)
        add("params", params)
    })

    /** Reads the client's next message and checks it is a request for [method]. */
    fun expectRequest(method: String): JsonObject {
        val message = receive()
        check(message.get("method")?.asString == method && message.has("id")) { "expected a $method request, got $message" }
        return message
    }

    /** Answers `initialize` with the capabilities of a sidecar serving every custom request, and reads `initialized`. */
    fun handshake(requests: List<String> = Methods.REQUIRED_REQUESTS + Methods.SCHEMA): JsonObject {
        val initialize = expectRequest("initialize")
        respond(initialize.get("id"), initializeResult(requests))
        val initialized = receive()
        check(initialized.get("method")?.asString == "initialized") { "expected initialized, got $initialized" }
        return initialize
    }

    companion object {
        fun initializeResult(requests: List<String>): JsonObject = json(
            """{"capabilities": {"experimental": {"mirrord": {"version": "0.0.0-test",
               "requests": ${requests.joinToString(",", "[", "]") { "\"$it\"" }},
               "notifications": ["mirrord/sessionEvent"]}}}}""",
        )
    }
}

fun json(text: String): JsonObject = JsonParser.parseString(text).asJsonObject

/** One `Content-Length` framed message, or null at the end of the stream. */
fun readFrame(input: InputStream): JsonObject? {
    var length = -1
    while (true) {
        val line = readHeaderLine(input) ?: return null
        if (line.isEmpty()) break
        val (name, value) = line.split(":", limit = 2).map(String::trim)
        if (name.equals("Content-Length", ignoreCase = true)) length = value.toInt()
    }
    check(length >= 0) { "a message without Content-Length" }
    val body = input.readNBytes(length)
    check(body.size == length) { "the stream ended inside a message" }
    return JsonParser.parseString(String(body, Charsets.UTF_8)).asJsonObject
}

private fun readHeaderLine(input: InputStream): String? {
    val line = ByteArrayOutputStream()
    while (true) {
        val byte = input.read()
        if (byte < 0) return if (line.size() == 0) null else error("the stream ended inside a header")
        if (byte == '\n'.code) return line.toString(Charsets.US_ASCII).trimEnd('\r')
        line.write(byte)
    }
}

/** A sidecar process made of pipes: the test plays the sidecar through [wire]. */
class FakeProcess : SidecarProcess {
    private val clientOutput = PipedOutputStream()
    private val sidecarInput = PipedInputStream(clientOutput, 1 shl 16)
    private val sidecarOutput = PipedOutputStream()
    private val clientInput = PipedInputStream(sidecarOutput, 1 shl 16)

    override val fromSidecar: InputStream = clientInput
    override val toSidecar: OutputStream = clientOutput
    override val exit = CompletableFuture<Int>()
    var killed = false
        private set

    val wire = WireEnd(sidecarInput, sidecarOutput)

    override fun stderrTail(): List<String> = listOf("fake sidecar stderr")

    /** The process ends: its stdout closes, then it is reaped. */
    fun exitWith(status: Int) {
        sidecarOutput.close()
        exit.complete(status)
    }

    override fun kill() {
        killed = true
        exitWith(137)
    }
}

/** A scheduler that runs nothing until the test says so, and remembers the delays. */
class ManualScheduler : Scheduler {
    val delays = mutableListOf<Long>()
    private val actions = ArrayDeque<() -> Unit>()

    @Synchronized
    override fun schedule(delayMillis: Long, action: () -> Unit) {
        delays += delayMillis
        actions.addLast(action)
    }

    fun pending(): Int = synchronized(this) { actions.size }

    fun runNext() {
        val action = synchronized(this) { actions.removeFirst() }
        action()
    }
}

/** A clock the test moves. */
class ManualClock(var now: Long = 0) : Clock {
    override fun millis(): Long = now
}

/** Waits until [condition] holds (liveness only). */
fun eventually(what: String, condition: () -> Boolean) {
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS)
    while (!condition()) {
        check(System.nanoTime() < deadline) { "timed out waiting for $what" }
        Thread.sleep(10)
    }
}
