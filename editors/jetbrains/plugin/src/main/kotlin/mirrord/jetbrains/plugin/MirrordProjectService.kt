// Per-project state of the plugin: whether mirrord is on, the chosen target and config, the one
// sidecar of the project (the core's supervisor; LSP4IJ shares it through editorConnection) and
// the launch preparer of ../core. No decisions here.
package mirrord.jetbrains.plugin

import com.intellij.ide.util.PropertiesComponent
import com.intellij.openapi.Disposable
import com.intellij.openapi.components.Service
import com.intellij.openapi.components.service
import com.intellij.openapi.project.Project
import com.intellij.openapi.project.guessProjectDir
import mirrord.jetbrains.core.EditorConnection
import mirrord.jetbrains.core.LaunchPreparer
import mirrord.jetbrains.core.SessionEvent
import mirrord.jetbrains.core.SidecarBinary
import mirrord.jetbrains.core.SidecarCommand
import mirrord.jetbrains.core.SidecarEvents
import mirrord.jetbrains.core.SidecarSupervisor
import mirrord.jetbrains.core.SidecarUnavailableException
import mirrord.jetbrains.core.SupervisorListener
import java.nio.file.Path
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ConcurrentHashMap

@Service(Service.Level.PROJECT)
class MirrordProjectService(private val project: Project) : Disposable {
    private val properties get() = PropertiesComponent.getInstance(project)

    var enabled: Boolean
        get() = properties.getBoolean(ENABLED, false)
        set(value) = properties.setValue(ENABLED, value, false)

    /** The target chosen with "Select Target"; null lets the config or the picker decide. */
    var target: String?
        get() = properties.getValue(TARGET)
        set(value) = properties.setValue(TARGET, value)

    /** The config file chosen for this project; null lets the sidecar find `.mirrord/mirrord.*`. */
    var configPath: String?
        get() = properties.getValue(CONFIG_PATH)
        set(value) = properties.setValue(CONFIG_PATH, value)

    val workspaceFolder: Path? get() = project.guessProjectDir()?.toNioPath()

    /** The last environment each run configuration was scheduled with (see RunEnvironments). */
    val runEnvironments = ConcurrentHashMap<Any, com.intellij.execution.runners.ExecutionEnvironment>()

    /** Sessions started for runs, by the run configuration that asked (ended when its process ends). */
    val pendingSessions = ConcurrentHashMap<Any, String>()

    /** A target picked before a run (the run hooks never show the picker): used by the next launch only. */
    @Volatile
    var targetForNextRun: String? = null

    private var supervisor: SidecarSupervisor? = null

    val preparer = LaunchPreparer({ supervisor().thenCompose { it.client() } })

    /** The editor's (LSP4IJ's) connection to the project's one sidecar. */
    fun editorConnection(): CompletableFuture<EditorConnection> = supervisor().thenCompose { it.editorConnection() }

    @Synchronized
    private fun supervisor(): CompletableFuture<SidecarSupervisor> {
        supervisor?.let { return CompletableFuture.completedFuture(it) }
        val folder = workspaceFolder ?: return CompletableFuture.failedFuture(SidecarUnavailableException("the project has no folder"))
        val binary = SidecarBinary.find(PropertiesComponent.getInstance().getValue(BINARY), System.getenv())
            ?: return CompletableFuture.failedFuture(SidecarUnavailableException("the mirrord binary was not found: set it in the settings or put mirrord on PATH"))
        val created = SidecarSupervisor(SidecarCommand(binary, folder), events = events, listener = failures)
        supervisor = created
        return CompletableFuture.completedFuture(created)
    }

    private val events = object : SidecarEvents {
        override fun onSessionEvent(event: SessionEvent) {
            if (event.kind == SessionEvent.AGENT_LOST) Notifications.warn(project, "mirrord session ${event.sessionId}: ${event.message}")
        }
    }

    private val failures = object : SupervisorListener {
        override fun onFailure(reason: String, lostSessions: Set<String>, retryInMillis: Long?) {
            val lost = if (lostSessions.isEmpty()) "" else " Sessions lost: ${lostSessions.joinToString()}."
            val next = retryInMillis?.let { " Restarting in ${it / 1000.0} s." } ?: " Gave up; toggle mirrord to try again."
            Notifications.error(project, "$reason.$lost$next")
        }
    }

    /** After giving up: the next toggle starts a new round of attempts. */
    fun restartSidecar() = supervisor?.start()

    override fun dispose() {
        supervisor?.close()
    }

    companion object {
        private const val ENABLED = "mirrord.enabled"
        private const val TARGET = "mirrord.target"
        private const val CONFIG_PATH = "mirrord.configPath"
        const val BINARY = "mirrord.binaryPath"

        fun of(project: Project): MirrordProjectService = project.service()
    }
}
