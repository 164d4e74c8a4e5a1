// The bundled schema (copied from schema/mirrord-schema.json at build time) for mirrord's JSON
// config files: mirrord.json, *.mirrord.json and .mirrord/*.json.
package mirrord.jetbrains.plugin

import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.VirtualFile
import com.jetbrains.jsonSchema.extension.JsonSchemaFileProvider
import com.jetbrains.jsonSchema.extension.JsonSchemaProviderFactory
import com.jetbrains.jsonSchema.extension.SchemaType

class MirrordSchemaProviderFactory : JsonSchemaProviderFactory {
    override fun getProviders(project: Project): List<JsonSchemaFileProvider> = listOf(MirrordSchemaProvider)

    private object MirrordSchemaProvider : JsonSchemaFileProvider {
        override fun isAvailable(file: VirtualFile): Boolean =
            file.name == "mirrord.json" || file.name.endsWith(".mirrord.json") || (file.extension == "json" && file.parent?.name == ".mirrord")

        override fun getName(): String = "mirrord"

        override fun getSchemaFile(): VirtualFile? = JsonSchemaProviderFactory.getResourceFile(javaClass, "/schemas/mirrord-schema.json")

        override fun getSchemaType(): SchemaType = SchemaType.embeddedSchema
    }
}
