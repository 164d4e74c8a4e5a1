// Balloons in the "mirrord" notification group (declared in plugin.xml).
package mirrord.jetbrains.plugin

import com.intellij.notification.NotificationAction
import com.intellij.notification.NotificationGroupManager
import com.intellij.notification.NotificationType
import com.intellij.openapi.fileEditor.OpenFileDescriptor
import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.LocalFileSystem
import mirrord.jetbrains.core.LaunchOutcome

object Notifications {
    private fun show(project: Project, text: String, type: NotificationType) =
        NotificationGroupManager.getInstance().getNotificationGroup("mirrord").createNotification(text, type)

    fun info(project: Project, text: String) = show(project, text, NotificationType.INFORMATION).notify(project)
    fun warn(project: Project, text: String) = show(project, text, NotificationType.WARNING).notify(project)
    fun error(project: Project, text: String) = show(project, text, NotificationType.ERROR).notify(project)

    /**
     * A failed launch, with "Show logs" (the log file the sidecar named, else the IDE's log, where
     * the sidecar's stderr goes); an invalid config gets "Open config" at its first diagnostic.
     */
    fun launchFailed(project: Project, outcome: LaunchOutcome.Failed) {
        val notification = show(project, "mirrord: ${outcome.message}", NotificationType.ERROR)
        val path = outcome.configPath
        if (path != null) {
            val first = outcome.diagnostics.firstOrNull()
            notification.addAction(NotificationAction.createSimpleExpiring("Open config") {
                LocalFileSystem.getInstance().refreshAndFindFileByPath(path)?.let { file ->
                    OpenFileDescriptor(project, file, first?.start?.line ?: 0, first?.start?.character ?: 0).navigate(true)
                }
            })
        }
        notification.addAction(NotificationAction.createSimpleExpiring("Show logs") {
            val log = outcome.log
            val file = log?.let { LocalFileSystem.getInstance().refreshAndFindFileByPath(it) }
            if (file != null) {
                OpenFileDescriptor(project, file).navigate(true)
            } else {
                com.intellij.ide.actions.ShowLogAction.showLog()
            }
        })
        notification.notify(project)
    }
}
