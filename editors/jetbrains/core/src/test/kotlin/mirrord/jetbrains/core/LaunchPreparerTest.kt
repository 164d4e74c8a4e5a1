package mirrord.jetbrains.core

import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Test
import java.util.concurrent.CompletableFuture
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.test.assertEquals
import kotlin.test.assertIs

/** The picker loop and cancellation of the launch preparer, against a scripted sidecar (the transcripts cover the rest). */
class LaunchPreparerTest {
    private val process = FakeProcess()
    private val client = SidecarClient.connect(process.fromSidecar, process.toSidecar)
    private val preparer = LaunchPreparer({ CompletableFuture.completedFuture(client) })
    private val background = Executors.newSingleThreadExecutor()

    @AfterEach
    fun close() {
        client.close()
        background.shutdownNow()
    }

    private fun targets(namespace: String, vararg paths: String) = json(
        """{"groups": [{"id": "deployment", "title": "Deployments", "targets": [${paths.joinToString(",") { """{"path": "$it", "kind": "deployment", "namespace": "$namespace", "available": true, "detail": ""}""" }}]}],
            "currentNamespace": "$namespace", "namespaces": ["default", "staging"]}""",
    )

    @Test
    fun `switching namespace lists that namespace's targets`() {
        val shown = mutableListOf<List<PickerItem>>()
        val ui = object : LaunchUi {
            override fun pickTarget(items: List<PickerItem>): PickerItem = items.also { shown += it }.let { rows ->
                if (shown.size == 1) rows.first { it is PickerItem.SwitchNamespace } else rows.first { it is PickerItem.Target }
            }

            override fun pickNamespace(current: String?, namespaces: List<String>): String {
                assertEquals("default" to listOf("default", "staging"), current to namespaces)
                return "staging"
            }
        }
        val chosen = background.submit<String?> { preparer.selectTarget("/w", "cfg/mirrord.json", ui) }
        val first = process.wire.expectRequest("mirrord/listTargets")
        assertEquals(json("""{"configPath": "cfg/mirrord.json", "workspaceFolder": "/w"}"""), first.get("params"))
        process.wire.respond(first.get("id"), targets("default", "deployment/api"))
        val second = process.wire.expectRequest("mirrord/listTargets")
        assertEquals(json("""{"namespace": "staging", "configPath": "cfg/mirrord.json", "workspaceFolder": "/w"}"""), second.get("params"))
        process.wire.respond(second.get("id"), targets("staging", "deployment/worker"))
        assertEquals("deployment/worker", chosen.get(WAIT_SECONDS, TimeUnit.SECONDS))
    }

    @Test
    fun `closing the picker cancels the launch`() {
        val ui = object : LaunchUi {
            override fun pickTarget(items: List<PickerItem>): PickerItem? = null
            override fun pickNamespace(current: String?, namespaces: List<String>) = error("not shown")
        }
        val outcome = background.submit<LaunchOutcome> {
            preparer.prepare(LaunchRequest(LaunchConfigs.go("api", null, emptyMap()), "/w"), ui)
        }
        val patch = process.wire.expectRequest("mirrord/patchLaunchConfig")
        assertEquals(json("""{"type": "go", "request": "launch", "name": "api"}"""), patch.getAsJsonObject("params").get("launchConfig"))
        process.wire.respondError(patch.get("id"), -32013, "no target", json("""{"configPath": null}"""))
        val list = process.wire.expectRequest("mirrord/listTargets")
        process.wire.respond(list.get("id"), targets("default", "deployment/api"))
        assertEquals(LaunchOutcome.Cancelled, outcome.get(WAIT_SECONDS, TimeUnit.SECONDS))
    }

    @Test
    fun `a run hook gets TargetRequired instead of a picker`() {
        val ui = object : LaunchUi {
            override fun pickTarget(items: List<PickerItem>) = error("no picker inside a run hook")
            override fun pickNamespace(current: String?, namespaces: List<String>) = error("not shown")
        }
        val outcome = background.submit<LaunchOutcome> {
            preparer.prepare(LaunchRequest(LaunchConfigs.go("api", null, emptyMap()), "/w"), ui, pickInline = false)
        }
        val patch = process.wire.expectRequest("mirrord/patchLaunchConfig")
        process.wire.respondError(patch.get("id"), -32013, "no target", json("""{"configPath": "/w/.mirrord/mirrord.json"}"""))
        assertEquals(LaunchOutcome.TargetRequired("/w/.mirrord/mirrord.json"), outcome.get(WAIT_SECONDS, TimeUnit.SECONDS))
    }

    @Test
    fun `cancelling while the session starts cancels the request`() {
        val cancelled = AtomicBoolean(false)
        val ui = object : LaunchUi {
            override fun pickTarget(items: List<PickerItem>) = error("not shown")
            override fun pickNamespace(current: String?, namespaces: List<String>) = error("not shown")
            override fun isCancelled() = cancelled.get()
        }
        val outcome = background.submit<LaunchOutcome> {
            preparer.prepare(LaunchRequest(LaunchConfigs.node("web", "/w/app.js", listOf("--inspect-brk=9230"), mapOf("A" to "1")), "/w", target = "pid/7"), ui)
        }
        val patch = process.wire.expectRequest("mirrord/patchLaunchConfig")
        assertEquals(
            json("""{"type": "node", "request": "launch", "name": "web", "env": {"A": "1"}, "program": "/w/app.js", "runtimeArgs": ["--inspect-brk=9230"]}"""),
            patch.getAsJsonObject("params").get("launchConfig"),
        )
        cancelled.set(true)
        val cancel = process.wire.receive()
        assertEquals("$/cancelRequest", cancel.get("method").asString, "the sidecar ends the session it was starting")
        assertIs<LaunchOutcome.Cancelled>(outcome.get(WAIT_SECONDS, TimeUnit.SECONDS))
    }

    @Test
    fun `a session that fails carries the sidecar's message and the log it names`() {
        val ui = object : LaunchUi {
            override fun pickTarget(items: List<PickerItem>) = error("not shown")
            override fun pickNamespace(current: String?, namespaces: List<String>) = error("not shown")
        }
        val request = LaunchRequest(LaunchConfigs.go("api", null, emptyMap()), "/w", target = "pid/7")
        val failed = background.submit<LaunchOutcome> { preparer.prepare(request, ui) }
        val patch = process.wire.expectRequest("mirrord/patchLaunchConfig")
        val log = "/home/dev/.local/state/mirrord/logs/session-1/agent.log"
        process.wire.respondError(patch.get("id"), -32014, "cannot start the session: the agent could not start", json("""{"log": "$log"}"""))
        assertEquals(
            LaunchOutcome.Failed("cannot start the session: the agent could not start", SidecarErrorCode.SESSION_FAILED, log = log),
            failed.get(WAIT_SECONDS, TimeUnit.SECONDS),
        )
        val missing = background.submit<LaunchOutcome> { preparer.prepare(request, ui) }
        val again = process.wire.expectRequest("mirrord/patchLaunchConfig")
        process.wire.respondError(again.get("id"), -32014, "cannot start the session: target process 7 does not exist", null)
        assertEquals(
            LaunchOutcome.Failed("cannot start the session: target process 7 does not exist", SidecarErrorCode.SESSION_FAILED),
            missing.get(WAIT_SECONDS, TimeUnit.SECONDS),
            "no log named: the plugin's own",
        )
    }
}
