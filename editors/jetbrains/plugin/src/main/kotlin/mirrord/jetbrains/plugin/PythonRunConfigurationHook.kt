// Python configurations (optional dependency on the Python plugin, META-INF/mirrord-python.xml).
package mirrord.jetbrains.plugin

import com.intellij.execution.configurations.GeneralCommandLine
import com.intellij.execution.configurations.RunnerSettings
import com.intellij.execution.process.ProcessHandler
import com.jetbrains.python.run.AbstractPythonRunConfiguration
import com.jetbrains.python.run.PythonRunConfigurationExtension
import mirrord.jetbrains.core.LaunchConfigs

class PythonRunConfigurationHook : PythonRunConfigurationExtension() {
    override fun isApplicableFor(configuration: AbstractPythonRunConfiguration<*>): Boolean = true

    override fun isEnabledFor(configuration: AbstractPythonRunConfiguration<*>, runnerSettings: RunnerSettings?): Boolean = true

    override fun patchCommandLine(
        configuration: AbstractPythonRunConfiguration<*>, runnerSettings: RunnerSettings?, commandLine: GeneralCommandLine, runnerId: String,
    ) {
        val launchConfig = LaunchConfigs.python(configuration.name, configuration.scriptName(), commandLine.environment)
        val environment = MirrordLaunch.environment(configuration.project, configuration, launchConfig) ?: return
        commandLine.environment.putAll(environment)
    }

    override fun attachToProcess(configuration: AbstractPythonRunConfiguration<*>, handler: ProcessHandler, runnerSettings: RunnerSettings?) =
        MirrordLaunch.endWhenTerminated(configuration.project, configuration, handler)

    private fun AbstractPythonRunConfiguration<*>.scriptName(): String? =
        (this as? com.jetbrains.python.run.PythonRunConfiguration)?.scriptName
}
