// mirrord.toml / mirrord.yaml (and JSON) editing through LSP4IJ (optional dependency,
// META-INF/mirrord-lsp4ij.xml). LSP4IJ does not start a sidecar of its own: its connection is the
// editor end of the project's one sidecar (the core's SidecarMux behind MirrordProjectService),
// so documents, diagnostics and sessions live in one process.
package mirrord.jetbrains.plugin

import com.intellij.openapi.project.Project
import com.redhat.devtools.lsp4ij.LanguageServerFactory
import com.redhat.devtools.lsp4ij.server.StreamConnectionProvider
import mirrord.jetbrains.core.EditorConnection
import java.io.InputStream
import java.io.OutputStream
import java.util.concurrent.TimeUnit

class MirrordLanguageServerFactory : LanguageServerFactory {
    override fun createConnectionProvider(project: Project): StreamConnectionProvider = SharedSidecarConnection(project)
}

/** LSP4IJ's connection to the project's sidecar; LSP4IJ calls [start] again after the sidecar restarted. */
class SharedSidecarConnection(private val project: Project) : StreamConnectionProvider {
    @Volatile
    private var connection: EditorConnection? = null

    override fun start() {
        // Called on LSP4IJ's background thread: waiting for the sidecar here blocks no UI and no lock.
        connection = try {
            MirrordProjectService.of(project).editorConnection().get(START_TIMEOUT_SECONDS, TimeUnit.SECONDS)
        } catch (error: Exception) {
            throw IllegalStateException("mirrord: the sidecar is not running: ${error.message}", error)
        }
    }

    override fun getInputStream(): InputStream = checkNotNull(connection) { "mirrord: not started" }.input

    override fun getOutputStream(): OutputStream = checkNotNull(connection) { "mirrord: not started" }.output

    override fun stop() {
        connection?.close()
        connection = null
    }

    private companion object {
        const val START_TIMEOUT_SECONDS = 60L
    }
}
