// Where the tests find the real sidecar binary and the recorded transcripts. Missing ones fail
// the tests that need them (never skip).
package mirrord.jetbrains.core

import java.nio.file.Files
import java.nio.file.Path

object TestPaths {
    private val moduleDir: Path = Path.of(System.getProperty("user.dir")).toAbsolutePath()

    /** `-Dmirrord.bin`, else `$MIRRORD_BIN`, else `target/debug/mirrord` of the repository. */
    fun mirrordBinary(): Path {
        val configured = System.getProperty("mirrord.bin")?.takeIf { it.isNotBlank() }
            ?: System.getenv("MIRRORD_BIN")?.takeIf { it.isNotBlank() }
        val binary = (configured?.let(Path::of) ?: moduleDir.resolve("../../../target/debug/mirrord")).toAbsolutePath().normalize()
        check(Files.isExecutable(binary)) {
            "the mirrord binary $binary is missing: build it (cargo build -p mirrord-cli -p mirrord-layer -p mirrord-agent) or set MIRRORD_BIN"
        }
        return binary
    }

    /** `-Dmirrord.transcripts`, else `tests/ide-transcripts` of the repository. */
    fun transcripts(): Path {
        val configured = System.getProperty("mirrord.transcripts")?.takeIf { it.isNotBlank() }
        val dir = (configured?.let(Path::of) ?: moduleDir.resolve("../../../tests/ide-transcripts")).toAbsolutePath().normalize()
        check(Files.isDirectory(dir)) { "the transcripts folder $dir is missing" }
        return dir
    }

    /** The repository's committed schema. */
    fun schema(): Path = moduleDir.resolve("../../../schema/mirrord-schema.json").normalize()

    /** The sidecar protocol's schema, generated from crates/ide/src/protocol.rs. */
    fun protocolSchema(): Path = moduleDir.resolve("../../../schema/ide-protocol.json").normalize()
}
