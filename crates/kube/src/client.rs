//! The Kubernetes client: from the config's `kubeconfig` and `kube_context` (or `$KUBECONFIG`,
//! which may list several files, or `~/.kube/config`, or the in-cluster service account), with
//! `accept_invalid_certificates`, and the namespace kubectl would use.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use mirrord_config::ResolvedConfig;
use serde::{Deserialize, Serialize};

use crate::error::{KubeError, error_chain};

/// The environment variable that carries [`KubeSettings`] to helper processes (the intproxy).
pub const KUBE_SETTINGS_ENV: &str = "MIRRORD_KUBE_SETTINGS";

/// How to reach the cluster: the part of the config a helper process needs to build its client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeSettings {
    /// Kubeconfig path (`~` expanded); `None`: `$KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<String>,
    /// Context to use instead of the kubeconfig's current one.
    pub context: Option<String>,
    /// Overrides the kubeconfig's `insecure-skip-tls-verify` when set.
    pub accept_invalid_certificates: Option<bool>,
}

impl KubeSettings {
    /// The settings of a resolved config.
    pub fn from_config(config: &ResolvedConfig) -> KubeSettings {
        KubeSettings {
            kubeconfig: config.kubeconfig.clone(),
            context: config.kube_context.clone(),
            accept_invalid_certificates: config.accept_invalid_certificates,
        }
    }

    /// As JSON, for [`KUBE_SETTINGS_ENV`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings always serialize")
    }

    /// From [`KUBE_SETTINGS_ENV`], if set and valid.
    pub fn from_env() -> Option<KubeSettings> {
        serde_json::from_str(&std::env::var(KUBE_SETTINGS_ENV).ok()?).ok()
    }

    /// Whether any cluster is configured: a kubeconfig file exists where one is looked for, or
    /// this process runs inside a cluster. Cheap; reads no file.
    pub fn cluster_configured(&self) -> bool {
        !self
            .kubeconfig_paths()
            .into_iter()
            .filter(|p| p.exists())
            .collect::<Vec<_>>()
            .is_empty()
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
    }

    /// The kubeconfig files that would be read, in order.
    fn kubeconfig_paths(&self) -> Vec<PathBuf> {
        if let Some(path) = &self.kubeconfig {
            return vec![expand_home(path)];
        }
        if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            return std::env::split_paths(&list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        home_dir()
            .map(|home| vec![home.join(".kube").join("config")])
            .unwrap_or_default()
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// A connected client and the namespace to use when none is given.
#[derive(Clone)]
pub struct Cluster {
    /// The API client.
    pub client: kube::Client,
    /// The kubeconfig context's namespace, the in-cluster namespace, or `default`.
    pub default_namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cluster")
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Builds a client the way kubectl finds its cluster.
    pub async fn connect(settings: &KubeSettings) -> Result<Cluster, KubeError> {
        let options = KubeConfigOptions {
            context: settings.context.clone(),
            ..KubeConfigOptions::default()
        };
        let paths = settings.kubeconfig_paths();
        let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
        let mut config = if !existing.is_empty() {
            let mut merged = Kubeconfig::default();
            for path in &existing {
                let file = Kubeconfig::read_from(path).map_err(|e| {
                    KubeError::Kubeconfig(format!("{}: {}", path.display(), error_chain(&e)))
                })?;
                merged = merged
                    .merge(file)
                    .map_err(|e| KubeError::Kubeconfig(error_chain(&e)))?;
            }
            if let Some(context) = &settings.context
                && !merged.contexts.iter().any(|c| c.name == *context)
            {
                let known: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
                return Err(KubeError::Kubeconfig(format!(
                    "context `{context}` is not in the kubeconfig (its contexts: {})",
                    known.join(", ")
                )));
            }
            kube::Config::from_custom_kubeconfig(merged, &options)
                .await
                .map_err(|e| KubeError::Kubeconfig(error_chain(&e)))?
        } else if settings.kubeconfig.is_some() {
            return Err(KubeError::Kubeconfig(format!(
                "{} does not exist",
                paths
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            kube::Config::incluster().map_err(|e| KubeError::Kubeconfig(error_chain(&e)))?
        } else {
            return Err(KubeError::NoCluster {
                looked_at: if paths.is_empty() {
                    "$KUBECONFIG and ~/.kube/config".to_owned()
                } else {
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        };
        if let Some(accept) = settings.accept_invalid_certificates {
            config.accept_invalid_certs = accept;
        }
        let default_namespace = config.default_namespace.clone();
        let client =
            crate::http_client::client(config).map_err(|e| KubeError::Client(error_chain(&e)))?;
        Ok(Cluster {
            client,
            default_namespace,
        })
    }

    /// The namespace to use: the given one, else the default (like kubectl's `-n`).
    pub fn namespace<'a>(&'a self, given: Option<&'a str>) -> &'a str {
        given
            .filter(|ns| !ns.is_empty())
            .unwrap_or(&self.default_namespace)
    }
}
