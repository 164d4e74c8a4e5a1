// Java/Kotlin application and JUnit configurations (optional dependency on the Java plugin,
// META-INF/mirrord-java.xml).
package mirrord.jetbrains.plugin

import com.intellij.execution.CommonJavaRunConfigurationParameters
import com.intellij.execution.RunConfigurationExtension
import com.intellij.execution.configurations.JavaParameters
import com.intellij.execution.configurations.RunConfigurationBase
import com.intellij.execution.configurations.RunnerSettings
import com.intellij.execution.process.ProcessHandler
import mirrord.jetbrains.core.LaunchConfigs

class JavaRunConfigurationHook : RunConfigurationExtension() {
    override fun isApplicableFor(configuration: RunConfigurationBase<*>): Boolean = configuration is CommonJavaRunConfigurationParameters

    override fun <T : RunConfigurationBase<*>> updateJavaParameters(configuration: T, params: JavaParameters, runnerSettings: RunnerSettings?) {
        val launchConfig = LaunchConfigs.java(configuration.name, params.mainClass, params.vmParametersList.list, params.env)
        val environment = MirrordLaunch.environment(configuration.project, configuration, launchConfig) ?: return
        params.env = environment
    }

    override fun attachToProcess(configuration: RunConfigurationBase<*>, handler: ProcessHandler, runnerSettings: RunnerSettings?) =
        MirrordLaunch.endWhenTerminated(configuration.project, configuration, handler)
}
