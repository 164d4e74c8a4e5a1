package mirrord.jetbrains.core

import org.junit.jupiter.api.Test
import kotlin.test.assertEquals
import kotlin.test.assertNull

class TargetPickerTest {
    private fun target(path: String, available: Boolean = true, detail: String = "d") =
        TargetInfo(path, path.substringBefore('/'), null, available, detail)

    private val listed = TargetList(
        targets = listOf(
            target("sandbox/demo", detail = "sandbox pod at 10.0.0.2"),
            target("sandbox/api"),
            TargetInfo("targetless", "targetless", null, true, "no target: outgoing traffic and DNS only"),
            target("pid/42", detail = "python3 app.py"),
            target("pid/43", available = false),
        ),
        currentNamespace = null,
        namespaces = emptyList(),
    )

    /** Renders the rows one per line: headers as `== label`, rows as `label — detail`, markers for recent/disabled. */
    private fun check(targets: TargetList, recent: List<String>, expected: String) {
        val rendered = TargetPicker.items(targets, recent).joinToString("\n") { item ->
            when (item) {
                is PickerItem.Group -> "== ${item.label}"
                is PickerItem.Target -> "${item.path} — ${item.detail}" + (if (item.recent) " [recent]" else "") + (if (item.enabled) "" else " [disabled]")
                is PickerItem.NoTarget -> TargetPicker.label(item) + " — ${item.detail}" + (if (item.recent) " [recent]" else "")
                is PickerItem.SwitchNamespace -> TargetPicker.label(item) + " ${item.namespaces}"
            }
        }
        assertEquals(expected.trimIndent(), rendered)
    }

    @Test
    fun `groups by kind in the sidecar's order with no target last`() = check(
        listed,
        recent = emptyList(),
        """
        == Sandbox pods
        sandbox/demo — sandbox pod at 10.0.0.2
        sandbox/api — d
        == Local processes
        pid/42 — python3 app.py
        pid/43 — d [disabled]
        == No target
        No target (targetless) — no target: outgoing traffic and DNS only
        """,
    )

    @Test
    fun `the most recent listed target comes first and only once`() = check(
        listed,
        recent = listOf("pod/gone", "pid/42", "sandbox/demo"),
        """
        == Recent
        pid/42 — python3 app.py [recent]
        == Sandbox pods
        sandbox/demo — sandbox pod at 10.0.0.2
        sandbox/api — d
        == Local processes
        pid/43 — d [disabled]
        == No target
        No target (targetless) — no target: outgoing traffic and DNS only
        """,
    )

    @Test
    fun `a recent targetless run puts no target first`() = check(
        TargetList(listOf(target("sandbox/demo")), null, emptyList()),
        recent = listOf("targetless"),
        """
        == Recent
        No target (targetless) — no target: outgoing traffic and DNS only [recent]
        == Sandbox pods
        sandbox/demo — d
        """,
    )

    @Test
    fun `namespaces offer a switch entry with the current one`() = check(
        TargetList(
            listOf(TargetInfo("deployment/api", "deployment", "staging", true, "2 replicas")),
            currentNamespace = "staging",
            namespaces = listOf("default", "staging"),
        ),
        recent = emptyList(),
        """
        == Deployments
        deployment/api — 2 replicas
        == No target
        No target (targetless) — no target: outgoing traffic and DNS only
        == Namespace
        Switch namespace… (current: staging) [default, staging]
        """,
    )

    @Test
    fun `choices`() {
        val items = TargetPicker.items(listed, emptyList())
        assertEquals(PickerChoice.UseTarget("sandbox/demo"), TargetPicker.choose(items.first { it is PickerItem.Target }))
        assertEquals(PickerChoice.UseTarget("targetless"), TargetPicker.choose(items.first { it is PickerItem.NoTarget }))
        assertNull(TargetPicker.choose(items.first { it is PickerItem.Group }), "headers are not choices")
        assertNull(TargetPicker.choose(items.first { it is PickerItem.Target && !it.enabled }), "unavailable targets cannot be used")
        val switch = PickerItem.SwitchNamespace("default", listOf("default", "staging"))
        assertEquals(PickerChoice.ListNamespace("staging"), TargetPicker.choose(switch, "staging"))
        assertNull(TargetPicker.choose(switch, null))
        assertNull(TargetPicker.choose(switch, "not-offered"))
    }

    @Test
    fun `recent targets are most recent first, unique and bounded`() {
        assertEquals(listOf("a"), TargetPicker.remember(emptyList(), "a"))
        assertEquals(listOf("b", "a", "c"), TargetPicker.remember(listOf("a", "b", "c"), "b"))
        assertEquals(listOf("f", "a", "b", "c", "d"), TargetPicker.remember(listOf("a", "b", "c", "d", "e"), "f"))
    }

    @Test
    fun `unknown kinds are grouped under their own name`() {
        assertEquals("Rollouts", TargetPicker.groupLabel("rollout"))
        assertEquals("gizmo", TargetPicker.groupLabel("gizmo"))
    }
}
