// Node.js configurations (optional dependency on the NodeJS plugin, META-INF/mirrord-node.xml).
package mirrord.jetbrains.plugin

import com.intellij.execution.ExecutionException
import com.intellij.execution.process.ProcessHandler
import com.intellij.execution.runners.ExecutionEnvironment
import com.intellij.javascript.nodejs.execution.AbstractNodeTargetRunProfile
import com.intellij.javascript.nodejs.execution.NodeTargetRun
import com.intellij.javascript.nodejs.execution.runConfiguration.AbstractNodeRunConfigurationExtension
import com.intellij.javascript.nodejs.execution.runConfiguration.NodeRunConfigurationLaunchSession
import com.jetbrains.nodejs.run.NodeJsRunConfiguration
import mirrord.jetbrains.core.LaunchConfigs

class NodeRunConfigurationHook : AbstractNodeRunConfigurationExtension() {
    override fun isApplicableFor(profile: AbstractNodeTargetRunProfile): Boolean = profile is NodeJsRunConfiguration

    @Throws(ExecutionException::class)
    override fun createLaunchSession(configuration: AbstractNodeTargetRunProfile, environment: ExecutionEnvironment): NodeRunConfigurationLaunchSession? {
        val node = configuration as NodeJsRunConfiguration
        val runtimeArgs = node.programParameters.orEmpty().split(' ').filter { it.startsWith("--inspect") }
        val launchConfig = LaunchConfigs.node(node.name, node.mainScriptFilePath, runtimeArgs, node.envs)
        val patched = MirrordLaunch.environment(node.project, node, launchConfig) ?: return null
        return object : NodeRunConfigurationLaunchSession() {
            override fun addNodeOptionsTo(targetRun: NodeTargetRun) {
                patched.forEach { (name, value) -> targetRun.commandLineBuilder.addEnvironmentVariable(name, value) }
            }

            override fun attachToProcess(handler: ProcessHandler) = MirrordLaunch.endWhenTerminated(node.project, node, handler)
        }
    }

}
