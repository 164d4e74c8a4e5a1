// The IntelliJ plugin: glue between the IDE and ../core (which Maven builds and tests on its own).
rootProject.name = "mirrord-jetbrains"

pluginManagement {
    repositories {
        gradlePluginPortal()
        mavenCentral()
    }
}
