// Renders the core's picker rows in a popup and waits for the choice (called off the UI thread).
package mirrord.jetbrains.plugin

import com.intellij.openapi.application.ApplicationManager
import com.intellij.openapi.project.Project
import com.intellij.openapi.ui.popup.JBPopupFactory
import com.intellij.openapi.ui.popup.JBPopupListener
import com.intellij.openapi.ui.popup.LightweightWindowEvent
import com.intellij.ui.SimpleListCellRenderer
import mirrord.jetbrains.core.PickerItem
import mirrord.jetbrains.core.TargetPicker
import java.util.concurrent.CompletableFuture

object TargetPickerPopup {
    fun pickTarget(project: Project, items: List<PickerItem>): PickerItem? {
        val rows = items.filterNot { it is PickerItem.Group }
        val groupOf = mutableMapOf<PickerItem, String>()
        var group: String? = null
        for (item in items) {
            if (item is PickerItem.Group) group = item.label else group?.let { groupOf.putIfAbsent(item, it); group = null }
        }
        return choose(project, "mirrord: Select Target", rows, { TargetPicker.label(it) }, { (it as? PickerItem.Target)?.detail ?: (it as? PickerItem.More)?.detail }, groupOf)
    }

    fun pickNamespace(project: Project, current: String?, namespaces: List<String>): String? =
        choose(project, "mirrord: Namespace (current: ${current ?: "none"})", namespaces, { it }, { null }, emptyMap())

    private fun <T : Any> choose(
        project: Project, title: String, rows: List<T>, label: (T) -> String, detail: (T) -> String?, separators: Map<T, String>,
    ): T? {
        val chosen = CompletableFuture<T?>()
        ApplicationManager.getApplication().invokeLater {
            JBPopupFactory.getInstance().createPopupChooserBuilder(rows)
                .setTitle(title)
                .setRenderer(SimpleListCellRenderer.create { cell, value, _ ->
                    cell.text = label(value) + (detail(value)?.let { "  —  $it" } ?: "")
                    cell.isEnabled = (value as? PickerItem.Target)?.enabled ?: true
                    cell.toolTipText = separators[value]
                })
                .setNamerForFiltering(label)
                .setItemChosenCallback { chosen.complete(it) }
                .addListener(object : JBPopupListener {
                    override fun onClosed(event: LightweightWindowEvent) {
                        chosen.complete(null)
                    }
                })
                .createPopup()
                .showCenteredInCurrentWindow(project)
        }
        return chosen.get()
    }
}
