// mirrord.toml / mirrord.yaml (and JSON) editing through LSP4IJ: the sidecar is the language
// server (optional dependency, META-INF/mirrord-lsp4ij.xml).
package mirrord.jetbrains.plugin

import com.intellij.ide.util.PropertiesComponent
import com.intellij.openapi.project.Project
import com.intellij.openapi.project.guessProjectDir
import com.redhat.devtools.lsp4ij.LanguageServerFactory
import com.redhat.devtools.lsp4ij.server.ProcessStreamConnectionProvider
import com.redhat.devtools.lsp4ij.server.StreamConnectionProvider
import mirrord.jetbrains.core.SidecarBinary

class MirrordLanguageServerFactory : LanguageServerFactory {
    override fun createConnectionProvider(project: Project): StreamConnectionProvider {
        val binary = SidecarBinary.find(PropertiesComponent.getInstance().getValue(MirrordProjectService.BINARY), System.getenv())
        return object : ProcessStreamConnectionProvider(listOf((binary ?: "mirrord").toString(), "ide"), project.guessProjectDir()?.path) {}
    }
}
