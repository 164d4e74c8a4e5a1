// Starting `mirrord ide` and keeping it running: the process, where its binary is, and a
// supervisor that restarts it with back-off when it exits, and gives up after a run of quick
// failures (the plugin then offers a manual restart).
package mirrord.jetbrains.core

import java.io.File
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.nio.file.Files
import java.nio.file.Path
import java.util.ArrayDeque
import java.util.concurrent.CompletableFuture
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledExecutorService
import java.util.concurrent.TimeUnit

/** How to start the sidecar. It inherits [environment] on top of the IDE's: see docs/ide-protocol.md,
 *  the launch environment is computed against the sidecar's own environment. */
data class SidecarCommand(
    val binary: Path,
    val workspaceFolder: Path,
    val logFile: Path? = null,
    val logLevel: String? = null,
    val environment: Map<String, String> = emptyMap(),
) {
    fun arguments(): List<String> = buildList {
        add(binary.toString())
        add("ide")
        logFile?.let { add("--log-file"); add(it.toString()) }
        logLevel?.let { add("--log-level"); add(it) }
    }
}

/** A running sidecar process, as far as the client needs it. */
interface SidecarProcess {
    /** The sidecar's stdout: protocol only. */
    val fromSidecar: InputStream

    /** The sidecar's stdin. */
    val toSidecar: OutputStream

    /** Completes with the exit status. */
    val exit: CompletableFuture<Int>

    /** The last lines the sidecar wrote to stderr (for the user when it dies). */
    fun stderrTail(): List<String>

    fun kill()
}

/** Starts sidecar processes; tests replace it with fakes. */
fun interface ProcessStarter {
    @Throws(IOException::class)
    fun start(command: SidecarCommand): SidecarProcess
}

/** Starts the real binary. stderr is drained on a thread, keeping its last lines. */
object OsProcessStarter : ProcessStarter {
    private const val KEPT_STDERR_LINES = 20
    private const val STDERR_GRACE_MILLIS = 1_000L

    override fun start(command: SidecarCommand): SidecarProcess {
        val builder = ProcessBuilder(command.arguments()).directory(command.workspaceFolder.toFile())
        builder.environment().putAll(command.environment)
        val process = builder.start()
        val tail = ArrayDeque<String>()
        val stderrReader = Thread({
            process.errorStream.bufferedReader().useLines { lines ->
                lines.forEach { line ->
                    synchronized(tail) {
                        tail.addLast(line)
                        if (tail.size > KEPT_STDERR_LINES) tail.removeFirst()
                    }
                }
            }
        }, "mirrord-sidecar-stderr").apply { isDaemon = true }
        stderrReader.start()
        return object : SidecarProcess {
            override val fromSidecar: InputStream = process.inputStream
            override val toSidecar: OutputStream = process.outputStream
            // The last stderr lines explain the exit: let the reader catch up (children that
            // inherited stderr may keep it open, hence the bound).
            override val exit: CompletableFuture<Int> = process.onExit().thenApplyAsync {
                stderrReader.join(STDERR_GRACE_MILLIS)
                it.exitValue()
            }
            override fun stderrTail(): List<String> = synchronized(tail) { tail.toList() }
            override fun kill() {
                process.destroy()
                if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly()
            }
        }
    }
}

/** Where the `mirrord` binary is: the plugin's setting, then `$MIRRORD_BIN`, then `PATH`. */
object SidecarBinary {
    fun find(configured: String?, environment: Map<String, String>): Path? {
        configured?.takeIf { it.isNotBlank() }?.let { return Path.of(it).takeIf(::isExecutable) }
        environment["MIRRORD_BIN"]?.takeIf { it.isNotBlank() }?.let { return Path.of(it).takeIf(::isExecutable) }
        return environment["PATH"].orEmpty().split(File.pathSeparatorChar)
            .filter { it.isNotEmpty() }
            .map { Path.of(it, "mirrord") }
            .firstOrNull(::isExecutable)
    }

    private fun isExecutable(path: Path) = Files.isRegularFile(path) && Files.isExecutable(path)
}

/** Delays between restarts: doubling from [initialMillis] up to [maxMillis]. */
data class Backoff(
    val initialMillis: Long = 500,
    val maxMillis: Long = 30_000,
    /** Consecutive failed starts after which the supervisor gives up. */
    val maxAttempts: Int = 6,
    /** A sidecar that ran this long before exiting counts as healthy: the next restart is immediate-ish again. */
    val healthyAfterMillis: Long = 60_000,
) {
    /** The delay before restart number [restart] (1 for the first restart). */
    fun delayBefore(restart: Int): Long {
        var delay = initialMillis
        repeat(restart - 1) { delay = minOf(maxMillis, delay * 2) }
        return minOf(maxMillis, delay)
    }
}

/** Runs an action later. */
fun interface Scheduler {
    fun schedule(delayMillis: Long, action: () -> Unit)
}

/** A monotonic clock in milliseconds. */
fun interface Clock {
    fun millis(): Long
}

/** What the supervisor tells the plugin (notifications, status bar). */
interface SupervisorListener {
    fun onStarted(info: SidecarInfo) {}

    /** The sidecar exited or failed to start; [retryInMillis] is null when the supervisor gave up. */
    fun onFailure(reason: String, lostSessions: Set<String>, retryInMillis: Long?) {}
}

/** The supervisor's state. */
sealed interface SupervisorState {
    data object Stopped : SupervisorState
    data class Starting(val attempt: Int) : SupervisorState
    data class Running(val client: SidecarClient, val info: SidecarInfo) : SupervisorState
    data class Waiting(val attempt: Int, val delayMillis: Long, val reason: String) : SupervisorState
    data class GaveUp(val reason: String) : SupervisorState
}

/**
 * Keeps one sidecar running for a workspace folder. [client] waits for a running sidecar;
 * when the process exits it is restarted after [Backoff.delayBefore]; after
 * [Backoff.maxAttempts] consecutive failures the supervisor gives up until [start] is called
 * again. [close] shuts the sidecar down (it ends its sessions) and restarts nothing.
 */
class SidecarSupervisor(
    private val command: SidecarCommand,
    private val starter: ProcessStarter = OsProcessStarter,
    private val backoff: Backoff = Backoff(),
    private val scheduler: Scheduler = defaultScheduler(),
    private val clock: Clock = Clock { System.nanoTime() / 1_000_000 },
    private val events: SidecarEvents = object : SidecarEvents {},
    private val listener: SupervisorListener = object : SupervisorListener {},
    private val initializeTimeoutMillis: Long = 30_000,
) : AutoCloseable {
    private val lock = Any()
    private var state: SupervisorState = SupervisorState.Stopped
    private var waiters = mutableListOf<CompletableFuture<SidecarClient>>()
    private var failures = 0
    private var generation = 0
    private var process: SidecarProcess? = null
    private var mux: SidecarMux? = null

    fun state(): SupervisorState = synchronized(lock) { state }

    /** Starts the sidecar unless it is running or starting. Resets the failure count. */
    fun start() {
        synchronized(lock) {
            when (state) {
                SupervisorState.Stopped, is SupervisorState.GaveUp -> failures = 0
                else -> return
            }
        }
        launch(restartOf = null)
    }

    /** The running sidecar's client; starts it when stopped. Fails when the supervisor gives up. */
    fun client(): CompletableFuture<SidecarClient> {
        val waiter = CompletableFuture<SidecarClient>()
        val startNow = synchronized(lock) {
            when (val current = state) {
                is SupervisorState.Running -> return CompletableFuture.completedFuture(current.client)
                is SupervisorState.GaveUp -> return CompletableFuture.failedFuture(SidecarUnavailableException(current.reason))
                else -> waiters += waiter
            }
            state == SupervisorState.Stopped
        }
        if (startNow) start()
        return waiter
    }

    /**
     * A connection for the editor's language client (LSP4IJ) to this same sidecar, once it runs:
     * one sidecar per project. It ends when the sidecar exits; ask again for the restarted one.
     */
    fun editorConnection(): CompletableFuture<EditorConnection> = client().thenApply { running ->
        val shared = synchronized(lock) { mux.takeIf { (state as? SupervisorState.Running)?.client === running } }
            ?: throw SidecarUnavailableException("the sidecar restarted; ask again")
        shared.openEditor()
    }

    /** Starts a process; [restartOf] is the generation whose failure scheduled this restart. */
    private fun launch(restartOf: Int?) {
        val myGeneration: Int
        synchronized(lock) {
            if (state is SupervisorState.Running || state is SupervisorState.Starting) return
            if (restartOf != null && (generation != restartOf || state !is SupervisorState.Waiting)) return
            generation += 1
            myGeneration = generation
            state = SupervisorState.Starting(failures + 1)
        }
        val started = try {
            starter.start(command)
        } catch (error: IOException) {
            failed(myGeneration, "cannot start ${command.binary}: ${error.message}", emptySet(), startedAt = null)
            return
        }
        val startedAt = clock.millis()
        // The editor's language client (LSP4IJ) shares this process through the mux.
        val shared = SidecarMux(started)
        val client = SidecarClient.connect(shared.core.fromSidecar, shared.core.toSidecar, events)
        synchronized(lock) {
            process = started
            mux = shared
        }
        started.exit.whenComplete { status, _ ->
            val stderr = started.stderrTail().lastOrNull()?.let { ": $it" }.orEmpty()
            failed(myGeneration, "the sidecar exited with status $status$stderr", client.openSessions(), startedAt)
            client.close()
        }
        client.initialize(InitializeOptions(command.workspaceFolder))
            .orTimeout(initializeTimeoutMillis, TimeUnit.MILLISECONDS)
            .whenComplete { info, error ->
                if (error != null) {
                    // A sidecar that exited (its stdin or stdout closed under the handshake) is
                    // reported by the exit handler, with its status and stderr. One still running
                    // after a grace period is reported here, then killed.
                    val cause = (error.cause ?: error).let { it.message ?: it.toString() }
                    started.exit.copy().orTimeout(EXIT_GRACE_MILLIS, TimeUnit.MILLISECONDS).whenComplete { _, stillRunning ->
                        if (stillRunning != null) {
                            failed(myGeneration, "the sidecar did not initialize: $cause", emptySet(), startedAt)
                            started.kill()
                        }
                    }
                    return@whenComplete
                }
                val ready = synchronized(lock) {
                    if (generation != myGeneration || state !is SupervisorState.Starting) return@whenComplete
                    state = SupervisorState.Running(client, info)
                    waiters.also { waiters = mutableListOf() }
                }
                listener.onStarted(info)
                ready.forEach { it.complete(client) }
            }
    }

    /** A sidecar of [failedGeneration] is gone; restarts it later or gives up. */
    private fun failed(failedGeneration: Int, reason: String, lostSessions: Set<String>, startedAt: Long?) {
        val retry: Long?
        val abandoned: List<CompletableFuture<SidecarClient>>
        synchronized(lock) {
            if (generation != failedGeneration || state == SupervisorState.Stopped || state is SupervisorState.GaveUp ||
                state is SupervisorState.Waiting
            ) {
                return
            }
            process = null
            mux = null
            val ranHealthy = startedAt != null && state is SupervisorState.Running &&
                clock.millis() - startedAt >= backoff.healthyAfterMillis
            failures = if (ranHealthy) 1 else failures + 1
            if (failures >= backoff.maxAttempts) {
                state = SupervisorState.GaveUp("$reason (gave up after $failures attempts)")
                retry = null
                abandoned = waiters.also { waiters = mutableListOf() }
            } else {
                retry = backoff.delayBefore(failures)
                state = SupervisorState.Waiting(failures + 1, retry, reason)
                abandoned = emptyList()
            }
        }
        if (retry != null) scheduler.schedule(retry) { launch(restartOf = failedGeneration) }
        listener.onFailure(reason, lostSessions, retry)
        abandoned.forEach { it.completeExceptionally(SidecarUnavailableException(reason)) }
    }

    /** Shuts the sidecar down (`shutdown`, `exit`, then kill) and restarts nothing. */
    override fun close() {
        val running: SupervisorState
        val abandoned: List<CompletableFuture<SidecarClient>>
        val toKill: SidecarProcess?
        synchronized(lock) {
            running = state
            state = SupervisorState.Stopped
            generation += 1
            toKill = process
            process = null
            mux = null
            abandoned = waiters.also { waiters = mutableListOf() }
        }
        abandoned.forEach { it.completeExceptionally(SidecarUnavailableException("the sidecar was stopped")) }
        if (running is SupervisorState.Running) {
            try {
                running.client.shutdown().get(5, TimeUnit.SECONDS)
            } catch (_: Exception) {
                // Killed below either way.
            }
        }
        toKill?.let { dying ->
            try {
                dying.exit.get(5, TimeUnit.SECONDS)
            } catch (_: Exception) {
                dying.kill()
            }
        }
    }

    companion object {
        private const val EXIT_GRACE_MILLIS = 2_000L

        private fun defaultScheduler(): Scheduler {
            val executor: ScheduledExecutorService = Executors.newSingleThreadScheduledExecutor { runnable ->
                Thread(runnable, "mirrord-sidecar-restart").apply { isDaemon = true }
            }
            return Scheduler { delay, action -> executor.schedule(action, delay, TimeUnit.MILLISECONDS) }
        }
    }
}
