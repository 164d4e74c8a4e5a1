// One sidecar process per project shared by two JSON-RPC clients: the core's SidecarClient (custom
// requests, sessions) and the editor's LSP client (LSP4IJ: documents, diagnostics, completion).
// The mux sits on the process's stdio: the core's messages pass through as they are; the
// editor's requests get ids of their own ("editor:<original id>") so the answers find their way
// back; the editor's `initialize` is answered with the core's handshake (the sidecar is
// initialized once), its `shutdown`/`exit` end only its own connection.
package mirrord.jetbrains.core

import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.google.gson.JsonPrimitive
import java.io.ByteArrayOutputStream
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.util.concurrent.CompletableFuture
import java.util.concurrent.LinkedBlockingQueue
import kotlin.concurrent.thread

/** The editor's end of the shared sidecar: what LSP4IJ reads and writes. */
interface EditorConnection : AutoCloseable {
    /** The sidecar's messages for the editor. */
    val input: InputStream

    /** The editor's messages for the sidecar. */
    val output: OutputStream

    /** Completes when the connection ends (the sidecar exited, or the editor sent `exit`). */
    val closed: CompletableFuture<Unit>
}

class SidecarMux(private val sidecar: SidecarProcess) {
    private val writeLock = Any()
    private val coreInbound = FrameQueue()
    private val coreInitializeIds = mutableSetOf<String>()
    @Volatile
    private var initializeResult: JsonElement? = null
    @Volatile
    private var editor: Editor? = null

    /** The process as the core's client sees it (the same exit, stderr and kill). */
    val core: SidecarProcess = object : SidecarProcess by sidecar {
        override val fromSidecar: InputStream = coreInbound.input
        override val toSidecar: OutputStream = FrameSplitter { frame -> fromCore(frame) }
    }

    init {
        thread(isDaemon = true, name = "mirrord-sidecar-mux") {
            try {
                while (true) route(readFrameBytes(sidecar.fromSidecar) ?: break)
            } catch (_: IOException) {
                // The process is gone: both clients see the end of their input.
            } finally {
                coreInbound.close()
                editor?.close()
            }
        }
    }

    /**
     * A connection for the editor's language client, replacing a previous one. Call it once the
     * core's client is initialized (the supervisor does): the editor's `initialize` gets the same
     * answer.
     */
    fun openEditor(): EditorConnection {
        val opened = Editor()
        editor?.close()
        editor = opened
        return opened
    }

    private fun writeToSidecar(body: ByteArray) {
        synchronized(writeLock) {
            sidecar.toSidecar.write("Content-Length: ${body.size}\r\n\r\n".toByteArray(Charsets.US_ASCII))
            sidecar.toSidecar.write(body)
            sidecar.toSidecar.flush()
        }
    }

    private fun fromCore(body: ByteArray) {
        val message = parse(body)
        if (message?.get("method")?.asString == "initialize") {
            synchronized(coreInitializeIds) { coreInitializeIds += message.get("id").toString() }
        }
        writeToSidecar(body)
    }

    /** A message of the sidecar: to the editor when it is about documents or answers the editor, else to the core. */
    private fun route(body: ByteArray) {
        val message = parse(body) ?: return coreInbound.put(body)
        val method = message.get("method")?.takeIf { it.isJsonPrimitive }?.asString
        if (method != null) {
            if (EDITOR_METHOD_PREFIXES.any(method::startsWith)) editor?.send(body) else coreInbound.put(body)
            return
        }
        val id = message.get("id")
        val text = id?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isString }?.asString
        if (text != null && text.startsWith(EDITOR_ID_PREFIX)) {
            message.add("id", JsonParser.parseString(text.removePrefix(EDITOR_ID_PREFIX)))
            editor?.send(message)
            return
        }
        if (id != null && synchronized(coreInitializeIds) { coreInitializeIds.remove(id.toString()) }) {
            initializeResult = message.get("result")
        }
        coreInbound.put(body)
    }

    private inner class Editor : EditorConnection {
        private val inbound = FrameQueue()
        override val input: InputStream = inbound.input
        override val output: OutputStream = FrameSplitter { frame -> fromEditor(frame) }
        override val closed = CompletableFuture<Unit>()

        fun send(body: ByteArray) = inbound.put(body)

        fun send(message: JsonObject) = send(message.toString().toByteArray(Charsets.UTF_8))

        private fun answer(id: JsonElement, result: JsonElement?) = send(JsonObject().apply {
            addProperty("jsonrpc", "2.0")
            add("id", id)
            add("result", result ?: JsonNull.INSTANCE)
        })

        private fun fromEditor(body: ByteArray) {
            if (closed.isDone) throw IOException("the sidecar connection is closed")
            val message = parse(body) ?: return writeToSidecar(body)
            val id = message.get("id")
            when (message.get("method")?.takeIf { it.isJsonPrimitive }?.asString) {
                "initialize" -> answer(id, initializeResult)
                "initialized" -> {}
                "shutdown" -> answer(id, JsonNull.INSTANCE)
                "exit" -> close()
                "\$/cancelRequest" -> {
                    val params = message.getAsJsonObject("params")
                    params?.get("id")?.let { params.add("id", JsonPrimitive(EDITOR_ID_PREFIX + it.toString())) }
                    writeToSidecar(message.toString().toByteArray(Charsets.UTF_8))
                }
                null -> writeToSidecar(body) // an answer to a request of the sidecar
                else -> {
                    if (id != null) message.add("id", JsonPrimitive(EDITOR_ID_PREFIX + id.toString()))
                    writeToSidecar(message.toString().toByteArray(Charsets.UTF_8))
                }
            }
        }

        override fun close() {
            if (closed.complete(Unit)) inbound.close()
        }
    }

    companion object {
        /** The prefix of the ids of the editor's requests on the wire. */
        const val EDITOR_ID_PREFIX = "editor:"

        /** Messages of the sidecar that belong to the editor's language client. */
        private val EDITOR_METHOD_PREFIXES = listOf("textDocument/", "workspace/", "client/")

        private fun parse(body: ByteArray): JsonObject? =
            runCatching { JsonParser.parseString(String(body, Charsets.UTF_8)).asJsonObject }.getOrNull()
    }
}

/** Frames (message bodies) handed from one thread to a reader as a framed byte stream. */
private class FrameQueue {
    private val frames = LinkedBlockingQueue<ByteArray>()
    private val end = ByteArray(0)
    @Volatile
    private var ended = false

    fun put(body: ByteArray) {
        if (ended) return
        frames.put("Content-Length: ${body.size}\r\n\r\n".toByteArray(Charsets.US_ASCII) + body)
    }

    fun close() {
        if (!ended) {
            ended = true
            frames.put(end)
        }
    }

    val input: InputStream = object : InputStream() {
        private var current = ByteArray(0)
        private var position = 0
        private var finished = false

        private fun fill(): Boolean {
            while (position >= current.size) {
                if (finished) return false
                val next = frames.take()
                if (next === end) {
                    finished = true
                    return false
                }
                current = next
                position = 0
            }
            return true
        }

        override fun read(): Int = if (fill()) current[position++].toInt() and 0xff else -1

        override fun read(buffer: ByteArray, offset: Int, length: Int): Int {
            if (length == 0) return 0
            if (!fill()) return -1
            val count = minOf(length, current.size - position)
            System.arraycopy(current, position, buffer, offset, count)
            position += count
            return count
        }
    }
}

/** An OutputStream that hands each complete `Content-Length` framed body to [onFrame], in the writer's thread. */
private class FrameSplitter(private val onFrame: (ByteArray) -> Unit) : OutputStream() {
    private val pending = ByteArrayOutputStream()

    override fun write(byte: Int) = write(byteArrayOf(byte.toByte()), 0, 1)

    @Synchronized
    override fun write(buffer: ByteArray, offset: Int, length: Int) {
        pending.write(buffer, offset, length)
        while (true) {
            val bytes = pending.toByteArray()
            val headerEnd = indexOf(bytes, HEADER_END)
            if (headerEnd < 0) return
            val headers = String(bytes, 0, headerEnd, Charsets.US_ASCII)
            val size = headers.lineSequence()
                .map { it.split(":", limit = 2) }
                .firstOrNull { it.size == 2 && it[0].trim().equals("Content-Length", ignoreCase = true) }
                ?.get(1)?.trim()?.toIntOrNull()
                ?: throw IOException("a message without Content-Length: $headers")
            val bodyStart = headerEnd + HEADER_END.size
            if (bytes.size < bodyStart + size) return
            val body = bytes.copyOfRange(bodyStart, bodyStart + size)
            pending.reset()
            pending.write(bytes, bodyStart + size, bytes.size - bodyStart - size)
            onFrame(body)
        }
    }

    private companion object {
        val HEADER_END = "\r\n\r\n".toByteArray(Charsets.US_ASCII)

        fun indexOf(bytes: ByteArray, needle: ByteArray): Int {
            outer@ for (start in 0..bytes.size - needle.size) {
                for (index in needle.indices) if (bytes[start + index] != needle[index]) continue@outer
                return start
            }
            return -1
        }
    }
}

/** One framed message body from [input], or null at its end. */
internal fun readFrameBytes(input: InputStream): ByteArray? {
    var length = -1
    while (true) {
        val line = ByteArrayOutputStream()
        while (true) {
            val byte = input.read()
            if (byte < 0) {
                if (line.size() == 0 && length < 0) return null
                throw IOException("the stream ended inside a header")
            }
            if (byte == '\n'.code) break
            line.write(byte)
        }
        val text = line.toString(Charsets.US_ASCII).trimEnd('\r')
        if (text.isEmpty()) break
        val parts = text.split(":", limit = 2)
        if (parts.size == 2 && parts[0].trim().equals("Content-Length", ignoreCase = true)) length = parts[1].trim().toInt()
    }
    if (length < 0) throw IOException("a message without Content-Length")
    val body = input.readNBytes(length)
    if (body.size != length) throw IOException("the stream ended inside a message")
    return body
}
