// The run-configuration hooks all end here: prepare the launch through the core (with a
// progress indicator and the picker), then apply the outcome or stop the run.
package mirrord.jetbrains.plugin

import com.google.gson.JsonObject
import com.intellij.execution.ExecutionException
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
        val request = LaunchRequest(launchConfig, folder.toString(), service.configPath, service.target)
        val outcome = withProgress(project) { indicator -> service.preparer.prepare(request, Ui(project, indicator)) }
        return when (outcome) {
            is LaunchOutcome.Patched -> {
                service.pendingSessions[runKey] = outcome.sessionId
                outcome.warnings.forEach { Notifications.info(project, it) }
                outcome.environment
            }
            is LaunchOutcome.Untouched -> null.also { outcome.warnings.forEach { Notifications.info(project, it) } }
            LaunchOutcome.Cancelled -> throw ExecutionException("mirrord: cancelled")
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
