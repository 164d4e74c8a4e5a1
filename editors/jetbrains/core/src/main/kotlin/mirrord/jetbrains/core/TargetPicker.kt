// The target picker's model: what the popup lists, in which order, and what a choice means. The
// plugin only renders these items; the order of kinds is the sidecar's (`mirrord/listTargets`
// returns targets in quick-pick order).
package mirrord.jetbrains.core

/** One row of the target picker. */
sealed interface PickerItem {
    /** A group header (not selectable). */
    data class Group(val label: String) : PickerItem

    /** A target; unavailable ones are shown disabled. */
    data class Target(val path: String, val detail: String, val enabled: Boolean, val recent: Boolean) : PickerItem

    /** Run without a target (`targetless`): outgoing traffic and DNS only. */
    data class NoTarget(val detail: String, val recent: Boolean) : PickerItem

    /** Pick another namespace, then list its targets. */
    data class SwitchNamespace(val current: String?, val namespaces: List<String>) : PickerItem
}

/** What the user's choice asks for. */
sealed interface PickerChoice {
    /** Use this target path in `mirrord/patchLaunchConfig`. */
    data class UseTarget(val path: String) : PickerChoice

    /** List the targets of this namespace and show the picker again. */
    data class ListNamespace(val namespace: String) : PickerChoice
}

object TargetPicker {
    const val TARGETLESS = "targetless"
    private const val TARGETLESS_DETAIL = "no target: outgoing traffic and DNS only"

    private val GROUP_LABELS = mapOf(
        "sandbox" to "Sandbox pods",
        "pid" to "Local processes",
        "pod" to "Pods",
        "deployment" to "Deployments",
        "rollout" to "Rollouts",
        "statefulset" to "Stateful sets",
        "replicaset" to "Replica sets",
        "job" to "Jobs",
        "cronjob" to "Cron jobs",
        "service" to "Services",
    )

    /** The label of a group of targets of [kind]. */
    fun groupLabel(kind: String): String = GROUP_LABELS[kind] ?: kind

    /**
     * The rows for [targets]: the most recent of [recentTargets] that is listed comes first (and
     * not again in its group), then one group per kind in the sidecar's order, then "no target",
     * then the namespace switch when the sidecar offers namespaces.
     */
    fun items(targets: TargetList, recentTargets: List<String>): List<PickerItem> {
        val listed = targets.targets.filter { it.kind != TARGETLESS && it.path != TARGETLESS }
        val targetlessDetail = targets.targets.firstOrNull { it.path == TARGETLESS }?.detail ?: TARGETLESS_DETAIL
        val recent = recentTargets.firstOrNull { path -> path == TARGETLESS || listed.any { it.path == path } }
        val items = mutableListOf<PickerItem>()
        if (recent != null) {
            items += PickerItem.Group("Recent")
            items += if (recent == TARGETLESS) {
                PickerItem.NoTarget(targetlessDetail, recent = true)
            } else {
                listed.first { it.path == recent }.let { PickerItem.Target(it.path, it.detail, it.available, recent = true) }
            }
        }
        for ((kind, group) in listed.filter { it.path != recent }.groupBy { it.kind }) {
            items += PickerItem.Group(groupLabel(kind))
            group.mapTo(items) { PickerItem.Target(it.path, it.detail, it.available, recent = false) }
        }
        if (recent != TARGETLESS) {
            items += PickerItem.Group("No target")
            items += PickerItem.NoTarget(targetlessDetail, recent = false)
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
        is PickerItem.NoTarget -> "No target ($TARGETLESS)"
        is PickerItem.SwitchNamespace -> "Switch namespace… (current: ${item.current ?: "none"})"
    }

    /** What choosing [item] means; [namespace] is the one picked after a namespace switch. */
    fun choose(item: PickerItem, namespace: String? = null): PickerChoice? = when (item) {
        is PickerItem.Group -> null
        is PickerItem.Target -> if (item.enabled) PickerChoice.UseTarget(item.path) else null
        is PickerItem.NoTarget -> PickerChoice.UseTarget(TARGETLESS)
        is PickerItem.SwitchNamespace -> namespace?.takeIf { it in item.namespaces }?.let(PickerChoice::ListNamespace)
    }

    /** [recentTargets] after using [path]: most recent first, no duplicates, at most [keep]. */
    fun remember(recentTargets: List<String>, path: String, keep: Int = 5): List<String> =
        (listOf(path) + recentTargets.filter { it != path }).take(keep)
}
