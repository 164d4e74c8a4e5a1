// Go configurations (optional dependency on the Go plugin, META-INF/mirrord-go.xml).
package mirrord.jetbrains.plugin

import com.goide.execution.GoRunConfigurationBase
import com.goide.execution.GoRunningState
import com.goide.execution.extension.GoRunConfigurationExtension
import com.intellij.execution.configurations.RunnerSettings
import com.intellij.execution.process.ProcessHandler
import com.intellij.execution.target.TargetedCommandLineBuilder
import mirrord.jetbrains.core.LaunchConfigs

class GoRunConfigurationHook : GoRunConfigurationExtension() {
    override fun isApplicableFor(configuration: GoRunConfigurationBase<*>): Boolean = true

    override fun isEnabledFor(configuration: GoRunConfigurationBase<*>, runnerSettings: RunnerSettings?): Boolean = true

    override fun patchCommandLine(
        configuration: GoRunConfigurationBase<*>, runnerSettings: RunnerSettings?, commandLine: TargetedCommandLineBuilder,
        runnerId: String, state: GoRunningState<out GoRunConfigurationBase<*>>, commandLineType: GoRunningState.CommandLineType,
    ) {
        // Only the program's own command line: the build step runs without mirrord.
        if (commandLineType != GoRunningState.CommandLineType.RUN) return
        val launchConfig = LaunchConfigs.go(configuration.name, null, configuration.customEnvironment)
        val environment = MirrordLaunch.environment(configuration.project, configuration, launchConfig) ?: return
        environment.forEach { (name, value) -> commandLine.addEnvironmentVariable(name, value) }
    }

    override fun attachToProcess(configuration: GoRunConfigurationBase<*>, handler: ProcessHandler, runnerSettings: RunnerSettings?) =
        MirrordLaunch.endWhenTerminated(configuration.project, configuration, handler)
}
