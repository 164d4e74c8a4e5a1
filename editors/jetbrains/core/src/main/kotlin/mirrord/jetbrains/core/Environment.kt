// Applying the environment `mirrord/patchLaunchConfig` returned to a run configuration's
// environment map. The sidecar decides every value (its `environment` holds final values, the
// layer's `LD_PRELOAD` already joined with the run configuration's); this only says what a run
// configuration cannot express.
package mirrord.jetbrains.core

/** The environment to launch with, and what could not be expressed in it. */
data class AppliedEnvironment(val environment: Map<String, String>, val warnings: List<String>)

object EnvironmentPatch {
    /**
     * [userEnvironment] (the run configuration's own variables, in their order) with [patched]
     * (the sidecar's `environment`) applied. A `null` in [patched] asks to remove a variable: a
     * run configuration cannot remove an inherited variable, and a variable the user set is kept,
     * so both only add a warning.
     */
    fun apply(userEnvironment: Map<String, String>, patched: Map<String, String?>): AppliedEnvironment {
        val environment = LinkedHashMap(userEnvironment)
        val warnings = mutableListOf<String>()
        val notRemoved = mutableListOf<String>()
        for ((name, value) in patched) {
            when {
                value == null && name in userEnvironment -> warnings += "mirrord would unset $name; it is kept because the run configuration sets it"
                value == null -> notRemoved += name
                else -> environment[name] = value
            }
        }
        if (notRemoved.isNotEmpty()) {
            warnings += "a run configuration cannot unset inherited variables; the program still sees ${notRemoved.joinToString(", ")}"
        }
        return AppliedEnvironment(environment, warnings)
    }
}
