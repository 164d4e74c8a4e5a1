// Applying the environment `mirrord/patchLaunchConfig` returned to a run configuration's
// environment map: the sidecar's values win, the user's variables are never dropped, and
// `LD_PRELOAD` keeps every library the user preloads beside the mirrord layer.
package mirrord.jetbrains.core

/** The environment to launch with, and what could not be expressed in it. */
data class AppliedEnvironment(val environment: Map<String, String>, val warnings: List<String>)

object EnvironmentPatch {
    const val LD_PRELOAD = "LD_PRELOAD"

    /**
     * [userEnvironment] (the run configuration's own variables, in their order) with [patched]
     * (the `env` of the patched launch configuration) applied. A `null` in [patched] asks to
     * remove a variable: a run configuration cannot remove an inherited variable, and a variable
     * the user set is kept, so both only add a warning.
     */
    fun apply(userEnvironment: Map<String, String>, patched: Map<String, String?>): AppliedEnvironment {
        val environment = LinkedHashMap(userEnvironment)
        val warnings = mutableListOf<String>()
        val notRemoved = mutableListOf<String>()
        for ((name, value) in patched) {
            when {
                value == null && name in userEnvironment -> warnings += "mirrord would unset $name; it is kept because the run configuration sets it"
                value == null -> notRemoved += name
                name == LD_PRELOAD -> environment[name] = preload(value, userEnvironment[name])
                else -> environment[name] = value
            }
        }
        if (notRemoved.isNotEmpty()) {
            warnings += "a run configuration cannot unset inherited variables; the program still sees ${notRemoved.joinToString(", ")}"
        }
        return AppliedEnvironment(environment, warnings)
    }

    /**
     * The sidecar's `LD_PRELOAD` (the layer first) followed by every library of the user's value
     * that it does not already name. ld.so separates entries with colons or spaces.
     */
    fun preload(fromSidecar: String, fromUser: String?): String {
        val entries = entries(fromSidecar).toMutableList()
        entries(fromUser.orEmpty()).filterNot { it in entries }.forEach { entries += it }
        return entries.joinToString(":")
    }

    private fun entries(value: String): List<String> = value.split(':', ' ').filter { it.isNotEmpty() }
}
