// Builds the plugin with the IntelliJ Platform Gradle Plugin (2.x). Needs JetBrains' repositories,
// which the project's CI machines cannot reach: see ../README.md for what is verified where.
import org.jetbrains.intellij.platform.gradle.TestFrameworkType

plugins {
    id("org.jetbrains.kotlin.jvm") version "2.1.20"
    id("org.jetbrains.intellij.platform") version "2.5.0"
}

group = "mirrord.jetbrains"
version = "0.1.0"

repositories {
    mavenCentral()
    intellijPlatform {
        defaultRepositories()
    }
}

kotlin {
    jvmToolchain(21)
}

sourceSets {
    main {
        // The core is compiled into the plugin from its sources: one jar, no install step.
        kotlin.srcDir("../core/src/main/kotlin")
    }
}

dependencies {
    // The same versions as ../core/pom.xml.
    implementation("org.eclipse.lsp4j:org.eclipse.lsp4j.jsonrpc:0.24.0")
    implementation("com.google.code.gson:gson:2.13.2")

    intellijPlatform {
        // Ultimate, because the Node.js integration is compiled against its bundled NodeJS plugin.
        intellijIdeaUltimate("2025.1")
        bundledPlugins("com.intellij.java", "com.intellij.modules.json", "JavaScript", "NodeJS")
        // Optional integrations (plugin.xml <depends optional="true">): compiled against, not
        // required at run time. Marketplace versions for 2025.1; not checked from here.
        plugins("PythonCore:251.23774.435", "org.jetbrains.plugins.go:251.23774.435", "com.redhat.devtools.lsp4ij:0.13.0")
        testFramework(TestFrameworkType.Platform)
    }
}

// The schema is not kept twice: the committed schema/mirrord-schema.json is copied in at build time.
val copySchema by tasks.registering(Copy::class) {
    from(rootDir.resolve("../../../schema/mirrord-schema.json"))
    into(layout.buildDirectory.dir("generated/schema/schemas"))
}
sourceSets.main { resources.srcDir(layout.buildDirectory.dir("generated/schema")) }
tasks.processResources { dependsOn(copySchema) }

intellijPlatform {
    pluginConfiguration {
        ideaVersion {
            sinceBuild = "251"
        }
    }
}
