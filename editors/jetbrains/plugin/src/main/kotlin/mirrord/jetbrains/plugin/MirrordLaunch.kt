// The run-configuration hooks all end here: prepare the launch through the core (with a
// progress indicator), then apply the outcome or stop the run. The hooks never show the target
// picker (a hook may run under a read lock, and a modal wait there froze IDEs before): when no
// target is known the run stops, the picker opens on a pooled thread, and the run starts again
// with the chosen target.
package mirrord.jetbrains.plugin

import com.google.gson.JsonObject
import com.intellij.execution.ExecutionException
import com.intellij.execution.ExecutionListener
import com.intellij.execution.runners.ExecutionEnvironment
import com.intellij.execution.runners.ExecutionUtil
import com.intellij.execution.process.ProcessAdapter
import com.intellij.execution.process.ProcessEvent
import com.intellij.execution.process.ProcessHandler
import com.intellij.openapi.application.ApplicationManager
import com.intellij.openapi.progress.ProgressIndicator
import com.intellij.openapi.progress.ProgressManager
import com.intellij.openapi.project.Project
import mirrord.jetbrains.core.LaunchOutcome
import mirrord.jetbrains.core.LaunchRequest
import mirrord.jetbrains.core.PickerItem
import mirrord.jetbrains.core.ProgressState

object MirrordLaunch {
    /**
     * The environment to run [launchConfig] with, or null when mirrord is off or does not apply.
     * Throws [ExecutionException] to stop the run (cancelled, or the session could not start).
     * [runKey] identifies the run, for [endWhenTerminated].
     */
    fun environment(project: Project, runKey: Any, launchConfig: JsonObject): Map<String, String>? {
        val service = MirrordProjectService.of(project)
        if (!service.enabled) return null
        val folder = service.workspaceFolder ?: throw ExecutionException("mirrord: the project has no folder")
        val oneShot = service.targetForNextRun.also { service.targetForNextRun = null }
        val request = LaunchRequest(launchConfig, folder.toString(), service.configPath, oneShot ?: service.target)
        val outcome = withProgress(project) { indicator ->
            service.preparer.prepare(request, Ui(project, indicator), pickInline = false)
        }
        return when (outcome) {
            is LaunchOutcome.Patched -> {
                service.pendingSessions[runKey] = outcome.sessionId
                outcome.warnings.forEach { Notifications.info(project, it) }
                outcome.environment
            }
            is LaunchOutcome.Untouched -> null.also { outcome.warnings.forEach { Notifications.info(project, it) } }
            LaunchOutcome.Cancelled -> throw ExecutionException("mirrord: cancelled")
            is LaunchOutcome.TargetRequired -> {
                pickThenRestart(project, runKey, folder.toString(), outcome.configPath ?: service.configPath)
                throw ExecutionException("mirrord: pick a target; the run starts again with it")
            }
            is LaunchOutcome.Failed -> {
                Notifications.launchFailed(project, outcome)
                throw ExecutionException("mirrord: ${outcome.message}")
            }
        }
    }

    /** Ends the run's session when its process ends. */
    fun endWhenTerminated(project: Project, runKey: Any, handler: ProcessHandler) {
        val service = MirrordProjectService.of(project)
        val sessionId = service.pendingSessions.remove(runKey) ?: return
        handler.addProcessListener(object : ProcessAdapter() {
            override fun processTerminated(event: ProcessEvent) {
                ApplicationManager.getApplication().executeOnPooledThread { service.preparer.endSession(sessionId) }
            }
        })
    }

    /** The picker, off the run hook (pooled thread), then the same run again with the chosen target. */
    private fun pickThenRestart(project: Project, runKey: Any, folder: String, configPath: String?) {
        val service = MirrordProjectService.of(project)
        ApplicationManager.getApplication().executeOnPooledThread {
            val ui = object : mirrord.jetbrains.core.LaunchUi {
                override fun pickTarget(items: List<PickerItem>) = TargetPickerPopup.pickTarget(project, items)
                override fun pickNamespace(current: String?, namespaces: List<String>) = TargetPickerPopup.pickNamespace(project, current, namespaces)
            }
            runCatching { service.preparer.selectTarget(folder, configPath, ui) }
                .onSuccess { chosen ->
                    val environment = service.runEnvironments[runKey] ?: return@onSuccess
                    if (chosen == null) return@onSuccess
                    service.targetForNextRun = chosen
                    ApplicationManager.getApplication().invokeLater { ExecutionUtil.restart(environment) }
                }
                .onFailure { Notifications.error(project, "mirrord: ${it.message}") }
        }
    }

    private fun <T> withProgress(project: Project, work: (ProgressIndicator) -> T): T {
        val current = ProgressManager.getInstance().progressIndicator
        if (current != null && !ApplicationManager.getApplication().isDispatchThread) return work(current)
        return ProgressManager.getInstance().runProcessWithProgressSynchronously<T, RuntimeException>(
            { work(ProgressManager.getInstance().progressIndicator) }, "mirrord", true, project,
        )
    }

    private class Ui(private val project: Project, private val indicator: ProgressIndicator) : mirrord.jetbrains.core.LaunchUi {
        override fun pickTarget(items: List<PickerItem>): PickerItem? = TargetPickerPopup.pickTarget(project, items)
        override fun pickNamespace(current: String?, namespaces: List<String>): String? =
            TargetPickerPopup.pickNamespace(project, current, namespaces)
        override fun isCancelled(): Boolean = indicator.isCanceled
        override fun onProgress(state: ProgressState) {
            indicator.text = state.message ?: state.title
            state.percentage?.let { indicator.isIndeterminate = false; indicator.fraction = it / 100.0 }
        }
    }
}

/** Remembers each run's environment when it is scheduled, so that a run stopped for the picker can start again. */
class RunEnvironments(private val project: Project) : ExecutionListener {
    override fun processStartScheduled(executorId: String, env: ExecutionEnvironment) {
        env.runProfile.let { MirrordProjectService.of(project).runEnvironments[it] = env }
    }
}
