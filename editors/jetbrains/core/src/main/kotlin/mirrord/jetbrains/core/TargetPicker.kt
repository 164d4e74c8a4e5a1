// The target picker's rows, rendered from the sidecar's `mirrord/listTargets` groups (their
// order and titles, recently used first, "Local processes…" behind one entry when a cluster is
// reachable, "No target" last), plus the namespace switch. The sidecar lists, orders and
// remembers; this only turns its answer into rows and a choice into the next step.
package mirrord.jetbrains.core

/** One row of the target picker. */
sealed interface PickerItem {
    /** A group header (not selectable). */
    data class Group(val label: String) : PickerItem

    /** A target; unavailable ones are shown disabled. */
    data class Target(val path: String, val detail: String, val enabled: Boolean) : PickerItem

    /** An entry standing for more targets (e.g. "Local processes…"): lists [kinds] on their own. */
    data class More(val label: String, val detail: String, val kinds: List<String>) : PickerItem

    /** Pick another namespace, then list its targets. */
    data class SwitchNamespace(val current: String?, val namespaces: List<String>) : PickerItem
}

/** What the user's choice asks for. */
sealed interface PickerChoice {
    /** Use this target path in `mirrord/patchLaunchConfig`. */
    data class UseTarget(val path: String) : PickerChoice

    /** List the targets of this namespace and show the picker again. */
    data class ListNamespace(val namespace: String) : PickerChoice

    /** List only these kinds and show the picker again. */
    data class ListKinds(val kinds: List<String>) : PickerChoice
}

object TargetPicker {
    /** The rows for [targets]: each group's header and entries in the sidecar's order, then the namespace switch. */
    fun items(targets: TargetList): List<PickerItem> {
        val items = mutableListOf<PickerItem>()
        for (group in targets.groups) {
            items += PickerItem.Group(group.title)
            group.more?.let { items += PickerItem.More(it.label, it.detail, it.kinds) }
            group.targets.mapTo(items) { PickerItem.Target(it.path, it.detail, it.available) }
        }
        if (targets.namespaces.isNotEmpty()) {
            items += PickerItem.Group("Namespace")
            items += PickerItem.SwitchNamespace(targets.currentNamespace, targets.namespaces)
        }
        return items
    }

    /** The text of a selectable row (headers are rendered as separators by the plugin). */
    fun label(item: PickerItem): String = when (item) {
        is PickerItem.Group -> item.label
        is PickerItem.Target -> item.path
        is PickerItem.More -> item.label
        is PickerItem.SwitchNamespace -> "Switch namespace… (current: ${item.current ?: "none"})"
    }

    /** What choosing [item] means; [namespace] is the one picked after a namespace switch. */
    fun choose(item: PickerItem, namespace: String? = null): PickerChoice? = when (item) {
        is PickerItem.Group -> null
        is PickerItem.Target -> if (item.enabled) PickerChoice.UseTarget(item.path) else null
        is PickerItem.More -> PickerChoice.ListKinds(item.kinds)
        is PickerItem.SwitchNamespace -> namespace?.takeIf { it in item.namespaces }?.let(PickerChoice::ListNamespace)
    }
}
