package mirrord.jetbrains.core

import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import kotlin.test.assertEquals
import kotlin.test.assertNull
import kotlin.test.assertTrue

class ProgressTrackerTest {
    private fun progress(token: String, value: String) = json("""{"token": $token, "value": $value}""")

    @Test
    fun `begin, reports and end of one token`() {
        val tracker = ProgressTracker()
        val seen = mutableListOf<ProgressState>()
        tracker.addListener(seen::add)
        tracker.onProgress(progress("\"t\"", """{"kind": "begin", "title": "mirrord", "cancellable": false, "message": "starting a session"}"""))
        tracker.onProgress(progress("\"t\"", """{"kind": "report", "message": "starting the agent", "percentage": 40}"""))
        tracker.onProgress(progress("\"t\"", """{"kind": "report"}"""))
        assertEquals(listOf(ProgressState(ProgressToken("t"), "mirrord", "starting the agent", 40, false, false)), tracker.active())
        tracker.onProgress(progress("\"t\"", """{"kind": "end"}"""))
        assertEquals(
            listOf("starting a session", "starting the agent", "starting the agent", "starting the agent"),
            seen.map { it.message },
            "a report without a message keeps the last one",
        )
        assertEquals(listOf(false, false, false, true), seen.map { it.done })
        assertTrue(tracker.active().isEmpty())
    }

    @Test
    fun `string and integer tokens are different tokens`() {
        val tracker = ProgressTracker()
        tracker.onProgress(progress("1", """{"kind": "begin", "title": "a"}"""))
        tracker.onProgress(progress("\"1\"", """{"kind": "begin", "title": "b"}"""))
        assertEquals(setOf("a", "b"), tracker.active().map { it.title }.toSet())
        tracker.onProgress(progress("1", """{"kind": "end"}"""))
        assertEquals(listOf("b"), tracker.active().map { it.title })
    }

    @Test
    fun `tokens created by the sidecar are tracked until they end`() {
        val tracker = ProgressTracker()
        tracker.onCreate(json("""{"token": 7}"""))
        assertEquals(setOf(ProgressToken("7", numeric = true)), tracker.created())
        tracker.onProgress(progress("7", """{"kind": "begin", "title": "mirrord"}"""))
        tracker.onProgress(progress("7", """{"kind": "end", "message": "done"}"""))
        assertTrue(tracker.created().isEmpty())
    }

    @Test
    fun `a report whose begin was lost still shows, an unknown end changes nothing`() {
        val tracker = ProgressTracker()
        val state = tracker.onProgress(progress("\"x\"", """{"kind": "report", "message": "step", "percentage": 250}"""))
        assertEquals(ProgressState(ProgressToken("x"), "mirrord", "step", 100, false, false), state)
        assertNull(tracker.onProgress(progress("\"never\"", """{"kind": "end"}""")))
    }

    @Test
    fun `a watcher sees only its token, until the end`() {
        val tracker = ProgressTracker()
        val mine = mutableListOf<String?>()
        tracker.watch(ProgressToken("mine")) { mine += it.message }
        tracker.onProgress(progress("\"other\"", """{"kind": "begin", "title": "t", "message": "other"}"""))
        tracker.onProgress(progress("\"mine\"", """{"kind": "begin", "title": "t", "message": "one"}"""))
        tracker.onProgress(progress("\"mine\"", """{"kind": "end", "message": "two"}"""))
        tracker.onProgress(progress("\"mine\"", """{"kind": "begin", "title": "t", "message": "reused"}"""))
        assertEquals(listOf<String?>("one", "two"), mine)
    }

    @Test
    fun `malformed progress is a protocol error`() {
        val tracker = ProgressTracker()
        assertThrows<ProtocolException> { tracker.onProgress(json("""{"value": {"kind": "begin"}}""")) }
        assertThrows<ProtocolException> { tracker.onProgress(progress("\"t\"", """{"kind": "middle"}""")) }
        assertThrows<ProtocolException> { tracker.onProgress(json("""{"token": "t"}""")) }
    }
}
