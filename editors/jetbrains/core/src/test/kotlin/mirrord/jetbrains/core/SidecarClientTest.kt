package mirrord.jetbrains.core

import com.google.gson.JsonNull
import com.google.gson.JsonPrimitive
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.file.Path
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.ExecutionException
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertTrue

/** The client against a scripted sidecar over pipes: what goes on the wire and how answers decode. */
class SidecarClientTest {
    private val process = FakeProcess()
    private val events = CopyOnWriteArrayList<Any>()
    private val client = SidecarClient.connect(process.fromSidecar, process.toSidecar, object : SidecarEvents {
        override fun onSessionEvent(event: SessionEvent) { events += event }
        override fun onMessage(type: Int, message: String, show: Boolean) { events += "$type:$show:$message" }
        override fun onProtocolError(error: Throwable) { events += error }
    })
    private val wire = process.wire

    @AfterEach
    fun close() = client.close()

    private fun <T> java.util.concurrent.Future<T>.await(): T = get(WAIT_SECONDS, TimeUnit.SECONDS)

    @Test
    fun `initialize announces progress support and a workspace folder, then sends initialized`() {
        val info = client.initialize(InitializeOptions(Path.of("/home/dev/api")))
        val request = wire.expectRequest("initialize")
        val params = request.getAsJsonObject("params")
        assertEquals(JsonPrimitive(true), params.getAsJsonObject("capabilities").getAsJsonObject("window").get("workDoneProgress"))
        assertEquals("file:///home/dev/api", params.get("rootUri").asString)
        assertEquals("file:///home/dev/api", params.getAsJsonArray("workspaceFolders")[0].asJsonObject.get("uri").asString)
        assertEquals(json("""{"watchFiles": false}"""), params.get("initializationOptions"))
        wire.respond(request.get("id"), WireEnd.initializeResult(listOf("mirrord/listTargets")))
        assertEquals("initialized", wire.receive().get("method").asString)
        val decoded = info.await()
        assertEquals("0.0.0-test", decoded.version)
        assertEquals(listOf("mirrord/verifyConfig", "mirrord/patchLaunchConfig", "mirrord/endSession"), decoded.missingRequests)
    }

    @Test
    fun `typed requests send the documented params and decode the results`() {
        val listed = client.listTargets(ListTargetsParams(kinds = listOf("sandbox")))
        val list = wire.expectRequest("mirrord/listTargets")
        assertEquals(json("""{"kinds": ["sandbox"]}"""), list.get("params"))
        wire.respond(
            list.get("id"),
            json("""{"groups": [{"id": "sandbox", "title": "Sandbox pods", "targets": [{"path": "sandbox/demo", "kind": "sandbox", "available": true, "detail": "pod"}]},
                {"id": "pid", "title": "Local processes", "targets": [], "more": {"label": "Local processes…", "detail": "3 processes", "kinds": ["pid"]}}],
                "namespaces": []}"""),
        )
        assertEquals(
            TargetList(
                listOf(
                    TargetGroup("sandbox", "Sandbox pods", listOf(TargetInfo("sandbox/demo", "sandbox", null, true, "pod")), null),
                    TargetGroup("pid", "Local processes", emptyList(), MoreTargets("Local processes…", "3 processes", listOf("pid"))),
                ),
                null,
                emptyList(),
            ),
            listed.await(),
        )

        val schema = client.schema()
        val schemaRequest = wire.expectRequest("mirrord/schema")
        assertFalse(schemaRequest.has("params"), "mirrord/schema takes no params: the field is omitted")
        wire.respond(schemaRequest.get("id"), json("""{"type": "object"}"""))
        assertEquals(json("""{"type": "object"}"""), schema.await())

        val ended = client.endSession("ide-3")
        val end = wire.expectRequest("mirrord/endSession")
        assertEquals(json("""{"sessionId": "ide-3"}"""), end.get("params"))
        wire.respond(end.get("id"), json("""{"ended": false}"""))
        assertEquals(EndSessionResult(false), ended.await())
    }

    @Test
    fun `error responses become SidecarException with the config's diagnostics`() {
        val patched = client.patchLaunchConfig(PatchLaunchConfigParams(json("""{"type": "java", "request": "launch"}"""), "/w"))
        val request = wire.expectRequest("mirrord/patchLaunchConfig")
        assertEquals(
            json("""{"launchConfig": {"type": "java", "request": "launch"}, "workspaceFolder": "/w", "ide": "jetbrains"}"""),
            request.get("params"),
        )
        wire.respondError(
            request.get("id"), -32010, "the mirrord config /w/.mirrord/mirrord.json has 1 error",
            json(
                """{"configPath": "/w/.mirrord/mirrord.json", "diagnostics": [{"severity": "error", "message": "bad",
                   "path": "feature.fs.mode", "range": {"start": {"line": 2, "character": 4}, "end": {"line": 2, "character": 9}}}]}""",
            ),
        )
        val error = assertThrows<ExecutionException> { patched.await() }.cause
        assertIs<SidecarException>(error)
        assertEquals(SidecarErrorCode.CONFIG_INVALID, error.errorCode)
        assertEquals("/w/.mirrord/mirrord.json", error.configPath)
        assertEquals(listOf(ConfigDiagnostic("error", "bad", "feature.fs.mode", Position(2, 4), Position(2, 9), null)), error.diagnostics)
    }

    @Test
    fun `a result of the wrong shape is a protocol error naming the field`() {
        val listed = client.listTargets()
        val request = wire.expectRequest("mirrord/listTargets")
        wire.respond(request.get("id"), json("""{"groups": [{"id": "pid", "title": "Local processes", "targets": [{"path": "pid/1", "kind": "pid", "detail": "x"}]}], "namespaces": []}"""))
        val error = assertThrows<ExecutionException> { listed.await() }.cause
        assertIs<ProtocolException>(error)
        assertEquals("mirrord/listTargets.groups[0].targets[0]: `available` is missing or not a boolean", error.message)
    }

    @Test
    fun `the sidecar's own requests and notifications are handled`() {
        wire.request(1, "window/workDoneProgress/create", json("""{"token": 5}"""))
        val answer = wire.receive()
        assertEquals(JsonPrimitive(1), answer.get("id"))
        assertTrue(answer.has("result") && answer.get("result") == JsonNull.INSTANCE, "answered with a null result: $answer")
        assertEquals(setOf(ProgressToken("5", numeric = true)), client.progress.created())

        wire.notify("$/progress", json("""{"token": 5, "value": {"kind": "begin", "title": "mirrord", "message": "starting"}}"""))
        wire.notify("window/logMessage", json("""{"type": 3, "message": "hello"}"""))
        wire.notify("mirrord/sessionEvent", json("""{"sessionId": "ide-1", "kind": "agentLost", "message": "gone"}"""))
        wire.notify("mirrord/sessionEvent", json("""{"sessionId": "ide-1"}"""))
        eventually("four events") { events.size == 3 }
        assertEquals("starting", client.progress.active().single().message)
        assertEquals("3:false:hello", events[0])
        assertEquals(SessionEvent("ide-1", "agentLost", "gone"), events[1])
        assertIs<ProtocolException>(events[2], "a malformed event is reported, not thrown into LSP4J")
    }

    @Test
    fun `sessions are open from patchLaunchConfig until their ended event`() {
        val patched = client.patchLaunchConfig(PatchLaunchConfigParams(json("""{"type": "java", "request": "launch"}"""), "/w"))
        val request = wire.expectRequest("mirrord/patchLaunchConfig")
        wire.respond(request.get("id"), json("""{"launchConfig": {"env": {"A": "1", "B": null}}, "sessionId": "ide-1", "target": "pid/7", "environment": {"A": "1", "B": null}, "warnings": []}"""))
        val result = patched.await()
        assertEquals(mapOf("A" to "1", "B" to null), result.environment, "the sidecar's final environment, not re-read from launchConfig")
        assertEquals("pid/7", result.target)
        assertEquals(setOf("ide-1"), client.openSessions())
        wire.notify("mirrord/sessionEvent", json("""{"sessionId": "ide-1", "kind": "ended", "message": "no process uses it"}"""))
        eventually("the ended event") { events.isNotEmpty() }
        assertTrue(client.openSessions().isEmpty())
    }

    @Test
    fun `cancelling a request sends cancelRequest for its id`() {
        val patched = client.patchLaunchConfig(PatchLaunchConfigParams(json("""{"type": "java", "request": "launch"}"""), "/w"))
        val request = wire.expectRequest("mirrord/patchLaunchConfig")
        patched.cancel(true)
        val cancel = wire.receive()
        assertEquals("$/cancelRequest", cancel.get("method").asString)
        assertEquals(request.get("id").asString, cancel.getAsJsonObject("params").get("id").asString)
    }

    @Test
    fun `requests pending when the sidecar exits fail as unavailable`() {
        val listed = client.listTargets()
        wire.expectRequest("mirrord/listTargets")
        process.exitWith(1)
        assertIs<SidecarUnavailableException>(assertThrows<ExecutionException> { listed.await() }.cause)
        client.disconnected.await()
        assertIs<SidecarUnavailableException>(assertThrows<ExecutionException> { client.listTargets().await() }.cause)
    }
}
