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

/** Where the recent targets are kept (the plugin: per project). */
interface RecentTargets {
    fun load(): List<String>
    fun save(targets: List<String>)
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

    /** Do not run; show [message], and for an invalid config open [configPath] at the first of [diagnostics]. */
    data class Failed(
        val message: String,
        val code: SidecarErrorCode?,
        val diagnostics: List<ConfigDiagnostic> = emptyList(),
        val configPath: String? = null,
    ) : LaunchOutcome
}

class LaunchPreparer(
    private val client: () -> CompletableFuture<SidecarClient>,
    private val recentTargets: RecentTargets,
    /** How long a single request may take (starting a session starts an agent). */
    private val timeoutMillis: Long = TimeUnit.MINUTES.toMillis(5),
) {
    fun prepare(request: LaunchRequest, ui: LaunchUi): LaunchOutcome = try {
        val sidecar = await(client(), ui) ?: return LaunchOutcome.Cancelled
        prepareWith(sidecar, request, ui)
    } catch (error: SidecarException) {
        failure(error)
    } catch (error: SidecarUnavailableException) {
        LaunchOutcome.Failed("mirrord is not available: ${error.message}", null)
    } catch (error: ProtocolException) {
        LaunchOutcome.Failed("the mirrord sidecar answered something unexpected: ${error.message}", null)
    }

    private fun prepareWith(sidecar: SidecarClient, request: LaunchRequest, ui: LaunchUi): LaunchOutcome {
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
                target = pick(sidecar, request.configPath, ui) ?: return LaunchOutcome.Cancelled
                continue
            } finally {
                // A request that never began a progress will never end it either.
                if (!sidecar.progress.hasBegun(token)) sidecar.progress.unwatch(token)
            }
            val sessionId = result.sessionId ?: return LaunchOutcome.Untouched(result.warnings)
            target?.let { recentTargets.save(TargetPicker.remember(recentTargets.load(), it)) }
            val applied = EnvironmentPatch.apply(LaunchConfigs.environment(request.launchConfig), result.environment)
            return LaunchOutcome.Patched(applied.environment, sessionId, target, result.warnings + applied.warnings)
        }
    }

    /** The picker loop: list, show, and list again after a namespace switch. */
    private fun pick(sidecar: SidecarClient, configPath: String?, ui: LaunchUi): String? {
        var namespace: String? = null
        while (true) {
            val listed = await(sidecar.listTargets(ListTargetsParams(namespace = namespace, configPath = configPath)), ui)
                ?: return null
            val item = ui.pickTarget(TargetPicker.items(listed, recentTargets.load())) ?: return null
            val chosenNamespace = (item as? PickerItem.SwitchNamespace)?.let { ui.pickNamespace(it.current, it.namespaces) }
            when (val choice = TargetPicker.choose(item, chosenNamespace)) {
                is PickerChoice.UseTarget -> return choice.path
                is PickerChoice.ListNamespace -> namespace = choice.namespace
                null -> {} // a header, a disabled target, or no namespace chosen: show the picker again
            }
        }
    }

    /**
     * "Select Target" outside a launch: the picker alone. Returns the chosen path (remembered as
     * the recent one) or null when the user closed it; sidecar failures are thrown.
     */
    fun selectTarget(configPath: String?, ui: LaunchUi): String? {
        val sidecar = await(client(), ui) ?: return null
        return pick(sidecar, configPath, ui)?.also { recentTargets.save(TargetPicker.remember(recentTargets.load(), it)) }
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
        LaunchOutcome.Failed(error.reason, error.errorCode, error.diagnostics, error.configPath)

    private companion object {
        const val POLL_MILLIS = 100L
    }
}
