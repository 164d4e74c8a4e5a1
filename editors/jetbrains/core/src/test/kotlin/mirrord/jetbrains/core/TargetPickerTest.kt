package mirrord.jetbrains.core

import org.junit.jupiter.api.Test
import kotlin.test.assertEquals
import kotlin.test.assertNull

/** The picker renders the sidecar's groups as they come; the order and titles are the sidecar's (crates/ide/src/targets.rs). */
class TargetPickerTest {
    private fun target(path: String, available: Boolean = true, detail: String = "d") =
        TargetInfo(path, path.substringBefore('/'), null, available, detail)

    private val listed = TargetList(
        groups = listOf(
            TargetGroup("recent", "Recently used", listOf(target("pid/42", detail = "python3 app.py")), null),
            TargetGroup("sandbox", "Sandbox pods", listOf(target("sandbox/demo", detail = "sandbox pod at 10.0.0.2"), target("sandbox/api", available = false)), null),
            TargetGroup("pid", "Local processes", emptyList(), MoreTargets("Local processes…", "12 processes on this machine", listOf("pid"))),
            TargetGroup("targetless", "No target", listOf(TargetInfo("targetless", "targetless", null, true, "no target: outgoing traffic and DNS only")), null),
        ),
        currentNamespace = null,
        namespaces = emptyList(),
    )

    /** Renders the rows one per line: headers as `== label`, rows as `label — detail`, a marker for disabled. */
    private fun check(targets: TargetList, expected: String) {
        val rendered = TargetPicker.items(targets).joinToString("\n") { item ->
            when (item) {
                is PickerItem.Group -> "== ${item.label}"
                is PickerItem.Target -> "${item.path} — ${item.detail}" + (if (item.enabled) "" else " [disabled]")
                is PickerItem.More -> "${TargetPicker.label(item)} — ${item.detail} ${item.kinds}"
                is PickerItem.SwitchNamespace -> TargetPicker.label(item) + " ${item.namespaces}"
            }
        }
        assertEquals(expected.trimIndent(), rendered)
    }

    @Test
    fun `the sidecar's groups in its order with its titles`() = check(
        listed,
        """
        == Recently used
        pid/42 — python3 app.py
        == Sandbox pods
        sandbox/demo — sandbox pod at 10.0.0.2
        sandbox/api — d [disabled]
        == Local processes
        Local processes… — 12 processes on this machine [pid]
        == No target
        targetless — no target: outgoing traffic and DNS only
        """,
    )

    @Test
    fun `namespaces offer a switch entry with the current one`() = check(
        TargetList(
            listOf(TargetGroup("deployment", "Deployments", listOf(TargetInfo("deployment/api", "deployment", "staging", true, "2 replicas")), null)),
            currentNamespace = "staging",
            namespaces = listOf("default", "staging"),
        ),
        """
        == Deployments
        deployment/api — 2 replicas
        == Namespace
        Switch namespace… (current: staging) [default, staging]
        """,
    )

    @Test
    fun `choices`() {
        val items = TargetPicker.items(listed)
        assertEquals(PickerChoice.UseTarget("pid/42"), TargetPicker.choose(items.first { it is PickerItem.Target }))
        assertEquals(PickerChoice.UseTarget("targetless"), TargetPicker.choose(items.last { it is PickerItem.Target }))
        assertEquals(PickerChoice.ListKinds(listOf("pid")), TargetPicker.choose(items.first { it is PickerItem.More }))
        assertNull(TargetPicker.choose(items.first { it is PickerItem.Group }), "headers are not choices")
        assertNull(TargetPicker.choose(items.first { it is PickerItem.Target && !it.enabled }), "unavailable targets cannot be used")
        val switch = PickerItem.SwitchNamespace("default", listOf("default", "staging"))
        assertEquals(PickerChoice.ListNamespace("staging"), TargetPicker.choose(switch, "staging"))
        assertNull(TargetPicker.choose(switch, null))
        assertNull(TargetPicker.choose(switch, "not-offered"))
    }
}
