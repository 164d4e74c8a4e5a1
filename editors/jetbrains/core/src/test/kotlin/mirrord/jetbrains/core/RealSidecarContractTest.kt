package mirrord.jetbrains.core

import com.google.gson.JsonParser
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import javax.tools.ToolProvider
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertNotNull
import kotlin.test.assertTrue

/**
 * The core against the real `mirrord ide` and a sandbox pod: targets are listed, a Java
 * application configuration is patched for the pod (`ide: "jetbrains"`), and `java` started with
 * the returned environment reads the pod's file and variable through the layer. Needs root (the
 * sandbox pod is made of namespaces) and target/debug/{mirrord,libmirrord_layer.so,mirrord-agent}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RealSidecarContractTest {
    private val sandbox = "jetbrains-core"
    private val target = "sandbox/$sandbox"
    private val mirrord = TestPaths.mirrordBinary()
    private val scratch: Path = Files.createTempDirectory("mirrord-jetbrains-contract")
    private val workspace: Path = Files.createDirectories(scratch.resolve("project"))
    private val classes: Path = Files.createDirectories(scratch.resolve("classes"))
    private val sidecarLog: Path = scratch.resolve("sidecar.log")
    private val events = CopyOnWriteArrayList<SessionEvent>()
    private lateinit var supervisor: SidecarSupervisor
    private lateinit var expectedGreetingFile: String
    private lateinit var expectedGreetingVariable: String

    private fun run(vararg arguments: String): String {
        val process = ProcessBuilder(mirrord.toString(), *arguments).redirectErrorStream(true).start()
        val output = process.inputStream.bufferedReader().readText()
        check(process.waitFor(60, TimeUnit.SECONDS) && process.exitValue() == 0) { "mirrord ${arguments.joinToString(" ")} failed:\n$output" }
        return output
    }

    private fun log(): String = if (Files.exists(sidecarLog)) Files.readString(sidecarLog).takeLast(4_000) else "(no sidecar log)"

    @BeforeAll
    fun start() {
        assertEquals("0", ProcessBuilder("id", "-u").start().inputStream.bufferedReader().readText().trim(), "run as root: a sandbox pod is made of namespaces")
        val pod = JsonParser.parseString(run("sandbox", "up", sandbox, "--output", "json")).asJsonObject
        expectedGreetingFile = pod.getAsJsonArray("files").map { it.asJsonObject }
            .first { it.get("path").asString == "/app/data/greeting.txt" }.get("contents").asString
        expectedGreetingVariable = pod.getAsJsonObject("env").get("SANDBOX_GREETING").asString

        val source = scratch.resolve("Greeting.java")
        Files.writeString(
            source,
            """
            import java.nio.file.Files;
            import java.nio.file.Path;

            public class Greeting {
                public static void main(String[] args) throws Exception {
                    System.out.print(Files.readString(Path.of("/app/data/greeting.txt")));
                    System.out.println("GREETING=" + System.getenv("SANDBOX_GREETING"));
                    System.out.println("APP_MODE=" + System.getenv("APP_MODE"));
                }
            }
            """.trimIndent(),
        )
        val compiler = assertNotNull(ToolProvider.getSystemJavaCompiler(), "the tests run on a JDK")
        assertEquals(0, compiler.run(null, null, null, "-d", classes.toString(), source.toString()), "Greeting.java compiles")

        supervisor = SidecarSupervisor(
            SidecarCommand(mirrord, workspace, logFile = sidecarLog, logLevel = "debug"),
            events = object : SidecarEvents {
                override fun onSessionEvent(event: SessionEvent) { events += event }
            },
        )
    }

    @AfterAll
    fun stop() {
        if (::supervisor.isInitialized) supervisor.close()
        runCatching { run("sandbox", "down", sandbox) }
        scratch.toFile().deleteRecursively()
    }

    private fun client(): SidecarClient = supervisor.client().get(60, TimeUnit.SECONDS)

    @Test
    fun `initialize lists every request the plugin needs`() {
        client()
        val running = assertIs<SupervisorState.Running>(supervisor.state())
        assertEquals(emptyList(), running.info.missingRequests)
    }

    @Test
    fun `the running sandbox pod is listed and the picker offers it`() {
        val listed = client().listTargets(ListTargetsParams(workspaceFolder = workspace.toString())).get(60, TimeUnit.SECONDS)
        val pod = listed.targets.single { it.path == target }
        assertEquals("sandbox", pod.kind)
        assertTrue(pod.available)
        val items = TargetPicker.items(listed)
        assertTrue(PickerItem.Target(target, pod.detail, enabled = true) in items, items.toString())
        assertEquals(PickerItem.Group("No target"), items[items.size - 2], "no target is the last group")
    }

    @Test
    fun `a Java application configuration runs in the sandbox pod's context`() {
        val progress = CopyOnWriteArrayList<ProgressState>()
        val preparer = LaunchPreparer({ supervisor.client() })
        val userEnvironment = mapOf("APP_MODE" to "dev")
        val launchConfig = LaunchConfigs.java("Greeting", "Greeting", vmArgs = emptyList(), environment = userEnvironment)
        val outcome = preparer.prepare(
            LaunchRequest(launchConfig, workspace.toString(), target = target),
            object : LaunchUi {
                override fun pickTarget(items: List<PickerItem>) = error("the target was given: no picker")
                override fun pickNamespace(current: String?, namespaces: List<String>) = error("no namespaces for local targets")
                override fun onProgress(state: ProgressState) { progress += state }
            },
        )
        val patched = assertIs<LaunchOutcome.Patched>(outcome, "${outcome}\n${log()}")
        val environment = patched.environment
        assertEquals("dev", environment["APP_MODE"], "the run configuration's variables stay")
        assertTrue(environment.getValue("LD_PRELOAD").contains("libmirrord_layer.so"), environment.toString())
        assertTrue(environment.getValue("MIRRORD_LAYER_INTPROXY_ADDR").startsWith("127.0.0.1:"))
        assertEquals(expectedGreetingVariable, environment["SANDBOX_GREETING"], "the target's variables are included")
        assertFalse("PATH" in environment, "the sidecar's own environment is not copied")
        val resolved = JsonParser.parseString(environment.getValue("MIRRORD_RESOLVED_CONFIG")).asJsonObject
        assertTrue(resolved.getAsJsonObject("feature").getAsJsonObject("network").getAsJsonObject("outgoing").get("ignore_localhost").asBoolean,
            "java: the debuggee reaches the IDE's debugger over loopback")
        assertEquals(target, patched.target)
        val again = client().listTargets(ListTargetsParams(workspaceFolder = workspace.toString())).get(60, TimeUnit.SECONDS)
        assertEquals(TargetGroup("recent", "Recently used", listOf(again.targets.first { it.path == target }), null), again.groups.first(),
            "the sidecar lists the target of the project's last session first")
        eventually("the end of the session's progress") { progress.any { it.done } }
        assertTrue(progress.any { it.message?.contains("agent") == true }, progress.toString())

        // Launched the way IntelliJ launches a Java application: the IDE's environment (the
        // sidecar's) with the run configuration's map on top.
        val java = ProcessHandle.current().info().command().orElse("java")
        val builder = ProcessBuilder(java, "-cp", classes.toString(), "Greeting").directory(workspace.toFile())
        builder.environment().putAll(environment)
        val launched = builder.start()
        val stdout = launched.inputStream.bufferedReader().readText()
        val stderr = launched.errorStream.bufferedReader().readText()
        assertTrue(launched.waitFor(120, TimeUnit.SECONDS), "java finished")
        assertEquals(0, launched.exitValue(), "java failed under the layer:\n$stderr\n${log()}")
        assertEquals("${expectedGreetingFile}GREETING=$expectedGreetingVariable\nAPP_MODE=dev\n", stdout)

        assertTrue(preparer.endSession(patched.sessionId), "the session was running")
        eventually("the ended event") { events.any { it.sessionId == patched.sessionId && it.kind == SessionEvent.ENDED } }
        assertFalse(preparer.endSession(patched.sessionId), "a second end finds it ended")
    }

    @Test
    fun `an invalid config text is reported with its diagnostics`() {
        val result = client().verifyConfig(VerifyConfigParams(text = """{ "tagret": "pid/1" }""", format = "json")).get(60, TimeUnit.SECONDS)
        assertFalse(result.valid)
        assertEquals("tagret", result.diagnostics.single().path)
        assertEquals(Position(0, 2), result.diagnostics.single().start)
    }
}
