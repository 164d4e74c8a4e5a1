// What happens before a run configuration starts with mirrord enabled: one
// `mirrord/patchLaunchConfig`, and when the sidecar answers `TargetRequired`, the target picker
// (with a namespace switch) and the same request again with the chosen target. Every decision of
// the launch lives here; the plugin only renders the picker and the outcome.
package mirrord.jetbrains.core

import com.google.gson.JsonObject
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ExecutionException
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException

/** One launch to prepare. The run configuration's own variables are `launchConfig.env`. */
data class LaunchRequest(
    val launchConfig: JsonObject,
    val workspaceFolder: String,
    /** The config the user chose for this project (relative to the folder, or absolute). */
    val configPath: String? = null,
    /** A target the user already chose in the toolbar; null lets the config or the picker decide. */
    val target: String? = null,
)

/** What the plugin asks the user; called on the preparing (background) thread. */
interface LaunchUi {
    /** Shows the picker; returns the chosen row, or null when the user closed it. */
    fun pickTarget(items: List<PickerItem>): PickerItem?

    /** After "Switch namespace…": returns the namespace, or null to go back. */
    fun pickNamespace(current: String?, namespaces: List<String>): String?

    /** Polled while waiting for the sidecar; true cancels the request (and ends its session). */
    fun isCancelled(): Boolean = false

    fun onProgress(state: ProgressState) {}
}

/** The result of preparing a launch. */
sealed interface LaunchOutcome {
    /** Run with [environment] (the run configuration's variables with the session's applied). */
    data class Patched(
        val environment: Map<String, String>,
        val sessionId: String,
        val target: String?,
        val warnings: List<String>,
    ) : LaunchOutcome

    /** mirrord does not apply (attach, `MIRRORD_ACTIVE=0`): run as it is; [warnings] say why. */
    data class Untouched(val warnings: List<String>) : LaunchOutcome

    /** The user closed the picker or cancelled: do not run. */
    data object Cancelled : LaunchOutcome

    /**
     * Neither the config nor the request names a target, and the caller asked not to pick inside
     * the launch: show the picker before the run ([LaunchPreparer.selectTarget]) and start it
     * again with the chosen target.
     */
    data class TargetRequired(val configPath: String?) : LaunchOutcome

    /**
     * Do not run; show [message] as an error with "Show logs" (the sidecar's [log] when it names
     * one, else the plugin's log), and for an invalid config open [configPath] at the first of
     * [diagnostics].
     */
    data class Failed(
        val message: String,
        val code: SidecarErrorCode?,
        val diagnostics: List<ConfigDiagnostic> = emptyList(),
        val configPath: String? = null,
        val log: String? = null,
    ) : LaunchOutcome
}

class LaunchPreparer(
    private val client: () -> CompletableFuture<SidecarClient>,
    /** How long a single request may take (starting a session starts an agent). */
    private val timeoutMillis: Long = TimeUnit.MINUTES.toMillis(5),
) {
    /**
     * Prepares [request]. With [pickInline] false (run hooks: never block on the user there) a
     * missing target is [LaunchOutcome.TargetRequired] instead of the picker.
     */
    fun prepare(request: LaunchRequest, ui: LaunchUi, pickInline: Boolean = true): LaunchOutcome = try {
        val sidecar = await(client(), ui) ?: return LaunchOutcome.Cancelled
        prepareWith(sidecar, request, ui, pickInline)
    } catch (error: SidecarException) {
        failure(error)
    } catch (error: SidecarUnavailableException) {
        LaunchOutcome.Failed("mirrord is not available: ${error.message}", null)
    } catch (error: ProtocolException) {
        LaunchOutcome.Failed("the mirrord sidecar answered something unexpected: ${error.message}", null)
    }

    private fun prepareWith(sidecar: SidecarClient, request: LaunchRequest, ui: LaunchUi, pickInline: Boolean): LaunchOutcome {
        var target = request.target
        while (true) {
            val token = sidecar.newProgressToken()
            sidecar.progress.watch(token, ui::onProgress)
            val params = PatchLaunchConfigParams(
                launchConfig = request.launchConfig,
                workspaceFolder = request.workspaceFolder,
                configPath = request.configPath,
                target = target,
                workDoneToken = token.text,
            )
            val result = try {
                await(sidecar.patchLaunchConfig(params), ui) ?: return LaunchOutcome.Cancelled
            } catch (error: SidecarException) {
                if (error.errorCode != SidecarErrorCode.TARGET_REQUIRED || target != null) throw error
                if (!pickInline) return LaunchOutcome.TargetRequired(error.configPath)
                target = pick(sidecar, request.workspaceFolder, request.configPath, ui) ?: return LaunchOutcome.Cancelled
                continue
            } finally {
                // A request that never began a progress will never end it either.
                if (!sidecar.progress.hasBegun(token)) sidecar.progress.unwatch(token)
            }
            val sessionId = result.sessionId ?: return LaunchOutcome.Untouched(result.warnings)
            val applied = EnvironmentPatch.apply(LaunchConfigs.environment(request.launchConfig), result.environment)
            return LaunchOutcome.Patched(applied.environment, sessionId, result.target ?: target, result.warnings + applied.warnings)
        }
    }

    /** The picker loop: list, show, and list again after a namespace switch or "more". */
    private fun pick(sidecar: SidecarClient, workspaceFolder: String?, configPath: String?, ui: LaunchUi): String? {
        var namespace: String? = null
        var kinds: List<String>? = null
        while (true) {
            val params = ListTargetsParams(kinds = kinds, namespace = namespace, configPath = configPath, workspaceFolder = workspaceFolder)
            val listed = await(sidecar.listTargets(params), ui) ?: return null
            val item = ui.pickTarget(TargetPicker.items(listed)) ?: return null
            val chosenNamespace = (item as? PickerItem.SwitchNamespace)?.let { ui.pickNamespace(it.current, it.namespaces) }
            when (val choice = TargetPicker.choose(item, chosenNamespace)) {
                is PickerChoice.UseTarget -> return choice.path
                is PickerChoice.ListNamespace -> {
                    namespace = choice.namespace
                    kinds = null
                }
                is PickerChoice.ListKinds -> kinds = choice.kinds
                null -> {} // a header, a disabled target, or no namespace chosen: show the picker again
            }
        }
    }

    /**
     * The picker before a run starts (the "Select Target" action, and the plugin before it
     * launches a run whose config names no target): returns the chosen path, or null when the
     * user closed it; sidecar failures are thrown. The sidecar remembers the path as recent once
     * a session starts with it.
     */
    fun selectTarget(workspaceFolder: String?, configPath: String?, ui: LaunchUi): String? {
        val sidecar = await(client(), ui) ?: return null
        return pick(sidecar, workspaceFolder, configPath, ui)
    }

    /** Ends a session when its run ends; false when it had already ended. */
    fun endSession(sessionId: String): Boolean = try {
        client().get(timeoutMillis, TimeUnit.MILLISECONDS).endSession(sessionId).get(timeoutMillis, TimeUnit.MILLISECONDS).ended
    } catch (_: ExecutionException) {
        false
    } catch (_: TimeoutException) {
        false
    }

    /** Waits for [future] while the user may cancel; null when cancelled. Unwraps failures. */
    private fun <T> await(future: CompletableFuture<T>, ui: LaunchUi): T? {
        val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis)
        while (true) {
            if (ui.isCancelled()) {
                future.cancel(true)
                return null
            }
            try {
                return future.get(POLL_MILLIS, TimeUnit.MILLISECONDS)
            } catch (_: TimeoutException) {
                if (System.nanoTime() > deadline) {
                    future.cancel(true)
                    throw SidecarUnavailableException("no answer from the sidecar in ${timeoutMillis / 1000} s")
                }
            } catch (error: ExecutionException) {
                throw error.cause ?: error
            }
        }
    }

    private fun failure(error: SidecarException): LaunchOutcome.Failed =
        LaunchOutcome.Failed(error.reason, error.errorCode, error.diagnostics, error.configPath, error.log)

    private companion object {
        const val POLL_MILLIS = 100L
    }
}
