package mirrord.jetbrains.core

import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.io.IOException
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.attribute.PosixFilePermissions
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.ExecutionException
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertIs
import kotlin.test.assertTrue

/** Restarts with back-off, giving up, and shutting down, with fake processes and a manual scheduler and clock. */
class SidecarSupervisorTest {
    private val started = LinkedBlockingQueue<FakeProcess>()
    private val scheduler = ManualScheduler()
    private val clock = ManualClock()
    private val failures = CopyOnWriteArrayList<Triple<String, Set<String>, Long?>>()
    private val listener = object : SupervisorListener {
        override fun onFailure(reason: String, lostSessions: Set<String>, retryInMillis: Long?) {
            failures += Triple(reason, lostSessions, retryInMillis)
        }
    }
    private val command = SidecarCommand(Path.of("/opt/mirrord"), Path.of("/tmp"))

    private fun supervisor(
        backoff: Backoff = Backoff(initialMillis = 500, maxMillis = 4_000, maxAttempts = 4, healthyAfterMillis = 60_000),
        starter: ProcessStarter = ProcessStarter { FakeProcess().also(started::put) },
    ) = SidecarSupervisor(command, starter, backoff, scheduler, clock, listener = listener)

    /** The next fake process the supervisor started, after its handshake. */
    private fun nextRunning(): FakeProcess {
        val process = started.poll(WAIT_SECONDS, TimeUnit.SECONDS) ?: error("no process was started")
        process.wire.handshake()
        return process
    }

    private fun <T> java.util.concurrent.Future<T>.await(): T = get(WAIT_SECONDS, TimeUnit.SECONDS)

    @Test
    fun `a sidecar that exits is restarted with doubling delays, and waiting clients get the new one`() {
        val supervisor = supervisor()
        val first = supervisor.client()
        val process = nextRunning()
        val client = first.await()
        assertIs<SupervisorState.Running>(supervisor.state())

        process.exitWith(101)
        eventually("the failure") { failures.size == 1 }
        assertEquals(Triple("the sidecar exited with status 101: fake sidecar stderr", emptySet<String>(), 500L), failures[0])
        assertIs<SupervisorState.Waiting>(supervisor.state())
        val waiting = supervisor.client()
        assertTrue(!waiting.isDone, "a client asked for while waiting gets the restarted sidecar")

        scheduler.runNext()
        started.poll(WAIT_SECONDS, TimeUnit.SECONDS)!!.exitWith(1)
        eventually("the second failure") { failures.size == 2 }
        scheduler.runNext()
        val third = nextRunning()
        val restarted = waiting.await()
        assertTrue(restarted !== client)
        assertEquals(listOf(500L, 1_000L), scheduler.delays)

        // Ran long enough to count as healthy: the next crash restarts after the first delay again.
        clock.now += 60_000
        third.exitWith(2)
        eventually("the third failure") { failures.size == 3 }
        assertEquals(listOf(500L, 1_000L, 500L), scheduler.delays)
    }

    @Test
    fun `sessions open when the sidecar dies are reported lost`() {
        val supervisor = supervisor()
        val clientFuture = supervisor.client()
        val process = nextRunning()
        val patched = clientFuture.await().patchLaunchConfig(PatchLaunchConfigParams(json("""{"type": "java", "request": "launch"}"""), "/tmp"))
        val request = process.wire.expectRequest("mirrord/patchLaunchConfig")
        process.wire.respond(request.get("id"), json("""{"launchConfig": {}, "sessionId": "ide-7", "warnings": []}"""))
        patched.await()
        process.exitWith(139)
        eventually("the failure") { failures.isNotEmpty() }
        assertEquals(setOf("ide-7"), failures[0].second)
    }

    @Test
    fun `after the last attempt the supervisor gives up until started again`() {
        val supervisor = supervisor(starter = { throw IOException("No such file or directory") })
        val waiting = supervisor.client()
        repeat(3) { attempt ->
            eventually("failure ${attempt + 1}") { failures.size == attempt + 1 }
            scheduler.runNext()
        }
        eventually("the last failure") { failures.size == 4 }
        assertEquals(0, scheduler.pending(), "nothing more is scheduled")
        assertEquals(listOf(500L, 1_000L, 2_000L), scheduler.delays)
        assertEquals(null, failures.last().third)
        val gaveUp = assertIs<SupervisorState.GaveUp>(supervisor.state())
        assertEquals("cannot start /opt/mirrord: No such file or directory (gave up after 4 attempts)", gaveUp.reason)
        assertIs<SidecarUnavailableException>(assertThrows<ExecutionException> { waiting.await() }.cause)
        assertIs<SidecarUnavailableException>(assertThrows<ExecutionException> { supervisor.client().await() }.cause)

        supervisor.start()
        eventually("a new round of attempts") { failures.size == 5 }
        assertEquals(500L, failures.last().third, "start() begins a new round with the first delay")
    }

    @Test
    fun `close shuts the sidecar down and restarts nothing`() {
        val supervisor = supervisor()
        val clientFuture = supervisor.client()
        val process = nextRunning()
        clientFuture.await()
        val closing = Thread { supervisor.close() }.apply { start() }
        val shutdown = process.wire.expectRequest("shutdown")
        assertTrue(!shutdown.has("params"), "shutdown has no params field")
        process.wire.respond(shutdown.get("id"), null)
        assertEquals("exit", process.wire.receive().get("method").asString)
        process.exitWith(0)
        closing.join(TimeUnit.SECONDS.toMillis(WAIT_SECONDS))
        assertEquals(SupervisorState.Stopped, supervisor.state())
        assertTrue(failures.isEmpty(), "a requested shutdown is not a failure")
        assertEquals(0, scheduler.pending())
    }

    @Test
    fun `a sidecar that does not answer initialize is killed and restarted`() {
        val supervisor = SidecarSupervisor(
            command, { FakeProcess().also(started::put) }, Backoff(), scheduler, clock, listener = listener, initializeTimeoutMillis = 200,
        )
        supervisor.start()
        val silent = started.poll(WAIT_SECONDS, TimeUnit.SECONDS)!!
        eventually("the failure") { failures.isNotEmpty() }
        assertTrue(silent.killed)
        assertTrue(failures[0].first.startsWith("the sidecar did not initialize"), failures[0].first)
        assertEquals(listOf(500L), scheduler.delays)
    }

    @Test
    fun `a real process that exits at once is restarted, its stderr in the reason`() {
        val script = Files.createTempFile("fake-mirrord", ".sh")
        try {
            Files.writeString(script, "#!/bin/sh\necho \"mirrord: cannot read the config\" >&2\nexit 3\n")
            Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"))
            val supervisor = SidecarSupervisor(SidecarCommand(script, Path.of("/tmp")), OsProcessStarter, Backoff(), scheduler, clock, listener = listener)
            supervisor.start()
            eventually("the failure") { failures.isNotEmpty() }
            assertEquals("the sidecar exited with status 3: mirrord: cannot read the config", failures[0].first)
            scheduler.runNext()
            eventually("the restart's failure") { failures.size == 2 }
        } finally {
            Files.delete(script)
        }
    }

    @Test
    fun `back-off doubles up to its maximum`() {
        val backoff = Backoff(initialMillis = 500, maxMillis = 3_000)
        assertEquals(listOf(500L, 1_000L, 2_000L, 3_000L, 3_000L), (1..5).map(backoff::delayBefore))
    }

    @Test
    fun `the binary is the setting, then MIRRORD_BIN, then PATH`() {
        val dir = Files.createTempDirectory("bin")
        try {
            val binary = dir.resolve("mirrord")
            Files.writeString(binary, "#!/bin/sh\n")
            Files.setPosixFilePermissions(binary, PosixFilePermissions.fromString("rwx------"))
            assertEquals(binary, SidecarBinary.find(null, mapOf("PATH" to "/nonexistent:$dir")))
            assertEquals(binary, SidecarBinary.find(null, mapOf("MIRRORD_BIN" to binary.toString(), "PATH" to "")))
            assertEquals(binary, SidecarBinary.find(binary.toString(), emptyMap()))
            assertEquals(null, SidecarBinary.find("/nonexistent/mirrord", mapOf("PATH" to dir.toString())), "a wrong setting is not silently replaced")
            assertEquals(null, SidecarBinary.find(null, mapOf("PATH" to "/nonexistent")))
        } finally {
            dir.toFile().deleteRecursively()
        }
    }
}
