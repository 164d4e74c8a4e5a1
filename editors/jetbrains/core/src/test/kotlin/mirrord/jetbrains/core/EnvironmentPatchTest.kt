package mirrord.jetbrains.core

import org.junit.jupiter.api.Test
import kotlin.test.assertEquals

class EnvironmentPatchTest {
    private fun check(user: Map<String, String>, patched: Map<String, String?>, expected: Map<String, String>, warnings: List<String> = emptyList()) {
        val applied = EnvironmentPatch.apply(user, patched)
        assertEquals(expected, applied.environment)
        assertEquals(expected.keys.toList(), applied.environment.keys.toList(), "the user's variables keep their order, new ones follow")
        assertEquals(warnings, applied.warnings)
    }

    @Test
    fun `the user's variables stay and the session's are added`() = check(
        user = mapOf("APP_MODE" to "dev", "PORT" to "8080"),
        patched = mapOf("LD_PRELOAD" to "/m/libmirrord_layer.so", "SANDBOX_GREETING" to "hi", "PORT" to "8080"),
        expected = mapOf("APP_MODE" to "dev", "PORT" to "8080", "LD_PRELOAD" to "/m/libmirrord_layer.so", "SANDBOX_GREETING" to "hi"),
    )

    @Test
    fun `a target's variable wins over the user's value of it`() = check(
        user = mapOf("DATABASE_URL" to "postgres://localhost/app"),
        patched = mapOf("DATABASE_URL" to "postgres://db.sandbox.svc/app"),
        expected = mapOf("DATABASE_URL" to "postgres://db.sandbox.svc/app"),
    )

    @Test
    fun `the sidecar's LD_PRELOAD is final (it joined the user's libraries itself)`() = check(
        user = mapOf("LD_PRELOAD" to "/a.so /b.so"),
        patched = mapOf("LD_PRELOAD" to "/m/libmirrord_layer.so /a.so /b.so"),
        expected = mapOf("LD_PRELOAD" to "/m/libmirrord_layer.so /a.so /b.so"),
    )

    @Test
    fun `removals cannot drop the user's variables nor inherited ones`() = check(
        user = mapOf("SECRET" to "x"),
        patched = mapOf("SECRET" to null, "AWS_PROFILE" to null, "HOME" to null, "A" to "1"),
        expected = mapOf("SECRET" to "x", "A" to "1"),
        warnings = listOf(
            "mirrord would unset SECRET; it is kept because the run configuration sets it",
            "a run configuration cannot unset inherited variables; the program still sees AWS_PROFILE, HOME",
        ),
    )
}
