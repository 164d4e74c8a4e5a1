// The run toolbar's "Enable mirrord" toggle and "Select Target" action.
package mirrord.jetbrains.plugin

import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnAction
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.actionSystem.ToggleAction
import com.intellij.openapi.application.ApplicationManager
import mirrord.jetbrains.core.LaunchUi
import mirrord.jetbrains.core.PickerItem

class ToggleMirrordAction : ToggleAction() {
    override fun getActionUpdateThread() = ActionUpdateThread.BGT

    override fun isSelected(event: AnActionEvent): Boolean = event.project?.let { MirrordProjectService.of(it).enabled } ?: false

    override fun setSelected(event: AnActionEvent, state: Boolean) {
        val service = MirrordProjectService.of(event.project ?: return)
        service.enabled = state
        if (state) service.restartSidecar()
    }
}

class SelectTargetAction : AnAction() {
    override fun getActionUpdateThread() = ActionUpdateThread.BGT

    override fun actionPerformed(event: AnActionEvent) {
        val project = event.project ?: return
        val service = MirrordProjectService.of(project)
        ApplicationManager.getApplication().executeOnPooledThread {
            val ui = object : LaunchUi {
                override fun pickTarget(items: List<PickerItem>) = TargetPickerPopup.pickTarget(project, items)
                override fun pickNamespace(current: String?, namespaces: List<String>) = TargetPickerPopup.pickNamespace(project, current, namespaces)
            }
            runCatching { service.preparer.selectTarget(service.workspaceFolder?.toString(), service.configPath, ui) }
                .onSuccess { chosen -> if (chosen != null) service.target = chosen }
                .onFailure { Notifications.error(project, "mirrord: ${it.message}") }
        }
    }
}
