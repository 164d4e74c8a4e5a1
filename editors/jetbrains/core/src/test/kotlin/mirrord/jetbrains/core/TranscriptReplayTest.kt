package mirrord.jetbrains.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.ExecutionException
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertTrue

/**
 * The recorded transcripts of tests/ide-transcripts replayed against this client: for each
 * scenario the JetBrains client performs the same user action through the code the plugin calls
 * (supervisor, client, launch preparer) and must send exactly the recorded messages, then handle
 * the recorded answers. Inputs the user supplies (a launch configuration, a config text, a
 * configured config path or target) are taken from the recording.
 */
class TranscriptReplayTest {
    /** Scenarios that are not this client's: the JetBrains plugin syncs documents through LSP4IJ, not through the core. */
    private val notThisClient = mapOf(
        "open-config-diagnostics" to "document sync (didOpen, publishDiagnostics) is done by LSP4IJ with its own sidecar",
    )

    /** The user action of each scenario, with the checks of what the client made of the answers. */
    private val scenarios: Map<String, Scenario.() -> Unit> = mapOf(
        "initialize-schema" to {
            val schema = client().schema().get(WAIT_SECONDS, TimeUnit.SECONDS)
            assertEquals(JsonParser.parseString(Files.readString(TestPaths.schema())), schema, "the sidecar serves the committed schema")
        },
        "list-targets" to {
            val listed = client().listTargets().get(WAIT_SECONDS, TimeUnit.SECONDS)
            val items = TargetPicker.items(listed)
            assertEquals(
                listOf("Sandbox pods", "sandbox/ide-transcripts", "Local processes", ANY, "No target", "targetless"),
                items.map(TargetPicker::label),
            )
        },
        "verify-config-errors" to {
            val recorded = transcript.recordedParams(Methods.VERIFY_CONFIG)
            val result = client().verifyConfig(VerifyConfigParams(text = recorded.get("text").asString, format = "json"))
                .get(WAIT_SECONDS, TimeUnit.SECONDS)
            assertFalse(result.valid)
            assertTrue(result.diagnostics.size > 1, "several problems, all reported")
            assertEquals("unknown key `tagret` at the top level; did you mean `target`?", result.diagnostics.first().message)
            assertEquals("\"target\"", result.diagnostics.first().replacement)
        },
        "verify-config-uri" to {
            val uri = workspace.resolve(".mirrord/mirrord.toml").toUri().toString()
            val result = client().verifyConfig(VerifyConfigParams(uri = uri)).get(WAIT_SECONDS, TimeUnit.SECONDS)
            assertTrue(result.valid)
            assertTrue(result.config != null, "a valid config comes back resolved")
        },
        "patch-config-invalid" to {
            val outcome = assertIs<LaunchOutcome.Failed>(prepare(LaunchRequest(recordedLaunchConfig(), workspace.toString())))
            assertEquals(SidecarErrorCode.CONFIG_INVALID, outcome.code)
            assertEquals(workspace.resolve(".mirrord/mirrord.json").toString(), outcome.configPath, "the plugin opens this file…")
            assertEquals("feature.fs.mode", outcome.diagnostics.first().path, "…at the first diagnostic")
        },
        "patch-untouched" to {
            val outcome = assertIs<LaunchOutcome.Untouched>(prepare(LaunchRequest(recordedLaunchConfig(), workspace.toString())))
            assertEquals(listOf("an attach request runs no new process; mirrord applies to launch requests"), outcome.warnings)
        },
        "patch-pick-target" to {
            val outcome = assertIs<LaunchOutcome.Patched>(prepare(LaunchRequest(recordedLaunchConfig(), workspace.toString())))
            assertEquals(
                listOf("Sandbox pods", "sandbox/ide-transcripts", "No target", "targetless"),
                shownPickers.single().map(TargetPicker::label),
            )
            assertEquals("ide-1", outcome.sessionId)
            assertEquals("sandbox/ide-transcripts", outcome.target)
            assertEquals("hello from sandbox ide-transcripts", outcome.environment["SANDBOX_GREETING"])
            eventually("the end of the progress") { progress.any { it.done } }
            assertEquals(
                listOf("starting a session", "starting sandbox ide-transcripts", "starting the agent", "starting the internal proxy", "reading the target's environment"),
                progress.mapNotNull { it.message }.distinct(),
            )
            assertTrue(preparer.endSession("ide-1"), "the debug session ended: its mirrord session too")
            eventually("the ended event") { events.any { it.kind == SessionEvent.ENDED && it.sessionId == "ide-1" } }
            assertFalse(preparer.endSession("ide-1"), "ending it again finds it ended")
        },
        "patch-session-failed" to {
            val request = transcript.recordedParams(Methods.PATCH_LAUNCH_CONFIG)
            val outcome = prepare(LaunchRequest(recordedLaunchConfig(), workspace.toString(), target = request.get("target").asString))
            assertEquals(
                LaunchOutcome.Failed("cannot start the session: target process 999999999 does not exist", SidecarErrorCode.SESSION_FAILED),
                outcome,
            )
            eventually("the end of the progress") { progress.any { it.done } }
        },
        "patch-outside-workspace" to {
            val request = transcript.recordedParams(Methods.PATCH_LAUNCH_CONFIG)
            val outcome = assertIs<LaunchOutcome.Failed>(
                prepare(LaunchRequest(recordedLaunchConfig(), workspace.toString(), configPath = request.get("configPath").asString)),
            )
            assertEquals(SidecarErrorCode.PATH_OUTSIDE_WORKSPACE, outcome.code)
            assertEquals("/etc/passwd", outcome.configPath)
        },
        "patch-config-unreadable" to {
            val request = transcript.recordedParams(Methods.PATCH_LAUNCH_CONFIG)
            val outcome = assertIs<LaunchOutcome.Failed>(
                prepare(LaunchRequest(recordedLaunchConfig(), workspace.toString(), configPath = request.get("configPath").asString)),
            )
            assertEquals(SidecarErrorCode.CONFIG_UNREADABLE, outcome.code)
            assertTrue(outcome.message.startsWith("cannot read the mirrord config $workspace/.mirrord/missing.json"), outcome.message)
        },
        "end-session-unknown" to {
            assertFalse(preparer.endSession("ide-404"))
        },
        "unknown-method" to {
            val error = assertThrows<ExecutionException> { client().request("mirrord/noSuchMethod", JsonObject()).get(WAIT_SECONDS, TimeUnit.SECONDS) }.cause
            assertEquals(-32601, assertIs<SidecarException>(error).code)
        },
    )

    @Test
    fun `every transcript has a JetBrains scenario or a reason why not`() {
        val names = Transcript.loadAll(TestPaths.transcripts()).map { it.name }.toSet()
        assertTrue(names.isNotEmpty(), "no transcripts in ${TestPaths.transcripts()}")
        assertEquals(names, scenarios.keys + notThisClient.keys, "add a scenario for a new transcript (or a reason it is not this client's)")
    }

    @TestFactory
    fun replay(): List<DynamicTest> = Transcript.loadAll(TestPaths.transcripts())
        .filter { it.name !in notThisClient }
        .map { transcript ->
            DynamicTest.dynamicTest(transcript.name) {
                val action = scenarios[transcript.name] ?: error("no JetBrains scenario for transcript ${transcript.name}")
                Scenario(transcript).use { scenario -> scenario.run(action) }
            }
        }

    /** One replay: a fake sidecar process playing [transcript] behind a real supervisor. */
    class Scenario(val transcript: Transcript) : AutoCloseable {
        val workspace: Path = Files.createTempDirectory("mirrord-replay").toRealPath()
        private val process = FakeProcess()
        private val replayer = Replayer(transcript, process, workspace).start()
        val events = CopyOnWriteArrayList<SessionEvent>()
        val progress = CopyOnWriteArrayList<ProgressState>()
        val shownPickers = CopyOnWriteArrayList<List<PickerItem>>()
        private val supervisor = SidecarSupervisor(
            SidecarCommand(Path.of("/replayed/mirrord"), workspace),
            starter = { process },
            scheduler = { _, _ -> error("the replayed sidecar does not crash") },
            events = object : SidecarEvents {
                override fun onSessionEvent(event: SessionEvent) { events += event }
            },
        )
        val preparer = LaunchPreparer({ supervisor.client() }, timeoutMillis = TimeUnit.SECONDS.toMillis(WAIT_SECONDS))

        init {
            transcript.writeFiles(workspace)
        }

        fun client(): SidecarClient = supervisor.client().get(WAIT_SECONDS, TimeUnit.SECONDS)

        fun recordedLaunchConfig(): JsonObject = transcript.recordedParams(Methods.PATCH_LAUNCH_CONFIG).getAsJsonObject("launchConfig").let {
            substitute(it, mapOf("workspaceFolder" to workspace.toString()))!!.asJsonObject
        }

        /** The plugin's launch path; the user picks the first sandbox pod when the picker shows. */
        fun prepare(request: LaunchRequest): LaunchOutcome = preparer.prepare(request, object : LaunchUi {
            override fun pickTarget(items: List<PickerItem>): PickerItem? {
                shownPickers += items
                return items.first { it is PickerItem.Target && it.path.startsWith("sandbox/") }
            }

            override fun pickNamespace(current: String?, namespaces: List<String>) = error("local targets have no namespaces")
            override fun onProgress(state: ProgressState) { progress += state }
        })

        fun run(action: Scenario.() -> Unit) {
            client()
            action()
            // The plugin closes the project: shutdown and exit, the end of every transcript.
            supervisor.close()
            replayer.finished.get(WAIT_SECONDS, TimeUnit.SECONDS)
            process.toSidecar.close()
            val extra = runCatching { process.wire.receive() }
            assertTrue(extra.isFailure, "the client sent more than the recording: ${extra.getOrNull()}")
        }

        override fun close() {
            workspace.toFile().deleteRecursively()
        }
    }
}
