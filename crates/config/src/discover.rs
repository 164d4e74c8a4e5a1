//! Finding the config file: `--config-file`, then `$MIRRORD_CONFIG_FILE`, then
//! `.mirrord/mirrord.{json,toml,yaml,yml}` in the workspace.

use std::path::{Path, PathBuf};

/// File names looked for in a workspace's `.mirrord/` folder, in order.
pub const WORKSPACE_CONFIG_NAMES: &[&str] = &[
    "mirrord.json",
    "mirrord.toml",
    "mirrord.yaml",
    "mirrord.yml",
];

/// Where a config was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Given with `--config-file`.
    Flag(PathBuf),
    /// Given with `$MIRRORD_CONFIG_FILE`.
    Environment(PathBuf),
    /// Found in the workspace's `.mirrord/` folder.
    Workspace(PathBuf),
}

impl ConfigSource {
    /// The file's path.
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Flag(path)
            | ConfigSource::Environment(path)
            | ConfigSource::Workspace(path) => path,
        }
    }
}

/// The config file to use, if any. An explicit path is returned even when it does not exist (so
/// that reading it reports the problem); workspace files only when they exist.
pub fn find_config(
    flag: Option<&Path>,
    environment: Option<&str>,
    workspace: &Path,
) -> Option<ConfigSource> {
    if let Some(path) = flag {
        return Some(ConfigSource::Flag(path.to_path_buf()));
    }
    if let Some(path) = environment.filter(|path| !path.is_empty()) {
        return Some(ConfigSource::Environment(PathBuf::from(path)));
    }
    WORKSPACE_CONFIG_NAMES
        .iter()
        .map(|name| workspace.join(".mirrord").join(name))
        .find(|path| path.is_file())
        .map(ConfigSource::Workspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_environment_beats_workspace() {
        let workspace =
            std::env::temp_dir().join(format!("mirrord-discover-{}", std::process::id()));
        std::fs::create_dir_all(workspace.join(".mirrord")).unwrap();
        std::fs::write(workspace.join(".mirrord/mirrord.yaml"), "{}").unwrap();
        std::fs::write(workspace.join(".mirrord/mirrord.toml"), "").unwrap();
        let flag = Path::new("/x/flag.json");
        assert_eq!(
            find_config(Some(flag), Some("/x/env.json"), &workspace),
            Some(ConfigSource::Flag(flag.into()))
        );
        assert_eq!(
            find_config(None, Some("/x/env.json"), &workspace),
            Some(ConfigSource::Environment("/x/env.json".into()))
        );
        assert_eq!(
            find_config(None, None, &workspace),
            Some(ConfigSource::Workspace(
                workspace.join(".mirrord/mirrord.toml")
            ))
        );
        std::fs::remove_dir_all(&workspace).unwrap();
        assert_eq!(find_config(None, Some(""), &workspace), None);
    }
}
