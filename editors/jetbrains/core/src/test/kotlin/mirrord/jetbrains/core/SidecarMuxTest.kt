package mirrord.jetbrains.core

import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Test
import java.nio.file.Path
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertNull
import kotlin.test.assertTrue

/**
 * One sidecar per project: the editor's language client (LSP4IJ) and the core share the
 * supervisor's process. The sidecar is initialized once, each client gets its own answers and
 * notifications, and the editor's connection ends with the process.
 */
class SidecarMuxTest {
    private val process = FakeProcess()
    private val events = CopyOnWriteArrayList<SessionEvent>()
    private val supervisor = SidecarSupervisor(
        SidecarCommand(Path.of("/fake/mirrord"), Path.of("/w")),
        starter = { process },
        scheduler = { _, _ -> },
        events = object : SidecarEvents {
            override fun onSessionEvent(event: SessionEvent) { events += event }
        },
    )

    @AfterEach
    fun close() {
        process.exitWith(0)
    }

    private fun editor(): EditorConnection {
        val connection = supervisor.editorConnection()
        process.wire.handshake()
        return connection.get(WAIT_SECONDS, TimeUnit.SECONDS)
    }

    private fun EditorConnection.send(message: String) {
        val body = message.toByteArray(Charsets.UTF_8)
        output.write("Content-Length: ${body.size}\r\n\r\n".toByteArray(Charsets.US_ASCII) + body)
        output.flush()
    }

    private fun EditorConnection.receive(): JsonObject = readFrame(input) ?: error("the editor's connection ended")

    @Test
    fun `the editor's handshake is answered from the core's, and its requests get their own answers`() {
        val editor = editor()
        editor.send("""{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}""")
        val initialized = editor.receive()
        assertEquals(JsonPrimitive(1), initialized.get("id"))
        assertEquals("0.0.0-test", initialized.getAsJsonObject("result").getAsJsonObject("capabilities")
            .getAsJsonObject("experimental").getAsJsonObject("mirrord").get("version").asString)
        editor.send("""{"jsonrpc": "2.0", "method": "initialized", "params": {}}""")

        editor.send("""{"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {"position": {"line": 0, "character": 1}}}""")
        val hover = process.wire.expectRequest("textDocument/hover")
        assertEquals("editor:2", hover.get("id").asString, "the sidecar sees one initialize and an id of the editor's own")
        // The core asks at the same time, with an id of its own.
        val listing = supervisor.client().get(WAIT_SECONDS, TimeUnit.SECONDS).listTargets()
        val list = process.wire.expectRequest("mirrord/listTargets")
        process.wire.respond(list.get("id"), json("""{"groups": [], "namespaces": []}"""))
        process.wire.respond(hover.get("id"), json("""{"contents": "docs"}"""))
        assertEquals(emptyList(), listing.get(WAIT_SECONDS, TimeUnit.SECONDS).groups)
        val answer = editor.receive()
        assertEquals(JsonPrimitive(2), answer.get("id"))
        assertEquals("docs", answer.getAsJsonObject("result").get("contents").asString)

        process.wire.notify("textDocument/publishDiagnostics", json("""{"uri": "file:///w/mirrord.json", "diagnostics": []}"""))
        process.wire.notify("mirrord/sessionEvent", json("""{"sessionId": "ide-1", "kind": "ended", "message": "done"}"""))
        assertEquals("textDocument/publishDiagnostics", editor.receive().get("method").asString)
        eventually("the session event at the core") { events.isNotEmpty() }

        editor.send("""{"jsonrpc": "2.0", "id": 3, "method": "shutdown"}""")
        assertEquals(JsonPrimitive(3), editor.receive().get("id"), "the editor's shutdown does not stop the shared sidecar")
        editor.send("""{"jsonrpc": "2.0", "method": "exit"}""")
        assertNull(readFrame(editor.input), "exit ends the editor's connection")
        assertTrue(supervisor.state() is SupervisorState.Running, "the sidecar keeps running for the core")
    }

    @Test
    fun `the editor's connection ends when the sidecar exits`() {
        val editor = editor()
        process.exitWith(1)
        assertNull(readFrame(editor.input))
        editor.closed.get(WAIT_SECONDS, TimeUnit.SECONDS)
    }
}
