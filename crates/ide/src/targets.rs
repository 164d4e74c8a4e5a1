//! Listing targets for `mirrord/listTargets` and for completion inside `target`.
//!
//! Each kind of target comes from a [`TargetSource`]: [`LocalTargets`] (sandbox pods, local
//! processes, `targetless`) and [`KubeTargets`] (the cluster's pods, deployments, … with their
//! namespaces, through the same code as `mirrord ls`). [`groups`] decides what the editors'
//! pickers show, in which order and under which titles; the plugins only render it.

use std::time::{Duration, Instant};

use crate::protocol::{ListTargetsParams, MoreTargets, TargetGroup, TargetInfo};

/// A place targets come from.
pub trait TargetSource: Send + Sync + std::fmt::Debug {
    /// The target kinds this source lists (`sandbox`, `pid`, …).
    fn kinds(&self) -> &'static [&'static str];

    /// Lists the targets matching `query` (kinds are already filtered by the caller).
    fn list(&self, query: &ListTargetsParams) -> Result<Listing, String>;
}

/// Targets found, flat, by source then kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every target.
    pub targets: Vec<TargetInfo>,
    /// The namespace the cluster's context points at (`Some` only when a cluster answered).
    pub current_namespace: Option<String>,
    /// Namespaces the user can pick from.
    pub namespaces: Vec<String>,
}

/// Sandbox pods, local processes and `targetless`.
#[derive(Debug, Default)]
pub struct LocalTargets;

/// The longest command line shown as a process's detail.
const MAX_DETAIL_CHARS: usize = 160;

impl TargetSource for LocalTargets {
    fn kinds(&self) -> &'static [&'static str] {
        &["sandbox", "targetless", "pid"]
    }

    fn list(&self, query: &ListTargetsParams) -> Result<Listing, String> {
        let wants = |kind: &str| {
            query
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.iter().any(|wanted| wanted == kind))
        };
        let mut targets = Vec::new();
        if wants("sandbox") {
            for sandbox in mirrord_session::sandbox_targets() {
                targets.push(TargetInfo {
                    path: sandbox.entry.path,
                    kind: sandbox.entry.kind,
                    namespace: None,
                    available: sandbox.entry.available,
                    detail: sandbox.detail,
                });
            }
        }
        if wants("targetless") {
            targets.push(TargetInfo {
                path: "targetless".to_owned(),
                kind: "targetless".to_owned(),
                namespace: None,
                available: true,
                detail: "no target: outgoing traffic and DNS only".to_owned(),
            });
        }
        if wants("pid") {
            targets.extend(local_processes());
        }
        Ok(Listing {
            targets,
            current_namespace: None,
            namespaces: Vec::new(),
        })
    }
}

/// The Kubernetes targets of the cluster that the config (`kubeconfig`, `kube_context`) or
/// `KUBECONFIG` points at; none when no cluster is configured.
#[derive(Debug, Default)]
pub struct KubeTargets;

impl TargetSource for KubeTargets {
    fn kinds(&self) -> &'static [&'static str] {
        static KINDS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
            mirrord_kube::LISTED_KINDS
                .iter()
                .map(|kind| kind.as_str())
                .collect()
        });
        &KINDS
    }

    fn list(&self, query: &ListTargetsParams) -> Result<Listing, String> {
        // On a thread of its own: the listing drives a runtime of its own, which cannot start on a
        // thread that is already driving one (completion asks from the server's), and a cluster
        // that does not answer must not hold the editor for long.
        let query = query.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("mirrord-ide-kube-targets".to_owned())
            .spawn(move || {
                let _ = sender.send(list_cluster_targets(&query));
            })
            .map_err(|error| format!("cannot list the cluster's targets: {error}"))?;
        receiver
            .recv_timeout(KUBE_LIST_TIMEOUT)
            .unwrap_or_else(|_| {
                Err(format!(
                    "the cluster did not answer within {} s",
                    KUBE_LIST_TIMEOUT.as_secs()
                ))
            })
    }
}

/// How long a listing waits for the cluster.
const KUBE_LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster's targets, through the same code as `mirrord ls` (blocking).
fn list_cluster_targets(query: &ListTargetsParams) -> Result<Listing, String> {
    let config = match &query.config_path {
        Some(path) => mirrord_config::load_file(
            std::path::Path::new(path),
            &mirrord_config::Overrides::default(),
        )
        .map_err(|error| error.to_string())?
        .config
        .ok_or_else(|| format!("{path} has errors: fix them to list its cluster's targets"))?,
        None => mirrord_config::ResolvedConfig::default(),
    };
    let kinds = match &query.kinds {
        Some(wanted) => mirrord_kube::LISTED_KINDS
            .into_iter()
            .filter(|kind| wanted.iter().any(|w| w == kind.as_str()))
            .collect(),
        None => Vec::new(),
    };
    let options = mirrord_kube::ListOptions {
        namespace: query.namespace.clone(),
        kinds,
        page_size: None,
    };
    let listed =
        mirrord_session::list_targets(&config, options).map_err(|error| match error.help() {
            Some(help) => format!("{error} ({help})"),
            None => error.to_string(),
        })?;
    if listed.note.is_some() {
        // No cluster configured: the local source lists the sandboxes.
        return Ok(Listing::default());
    }
    let listing = listed.listing;
    Ok(Listing {
        targets: listing
            .targets
            .into_iter()
            .map(|entry| TargetInfo {
                detail: format!("{} in namespace {}", entry.kind, entry.namespace),
                path: entry.path,
                kind: entry.kind,
                namespace: Some(entry.namespace),
                available: entry.available,
            })
            .collect(),
        current_namespace: Some(listing.current_namespace),
        namespaces: listing.namespaces,
    })
}

/// Every process with a command line (kernel threads have none), but this one.
fn local_processes() -> Vec<TargetInfo> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid != own)
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            if raw.is_empty() {
                return None;
            }
            let mut detail: String = String::from_utf8_lossy(&raw)
                .trim_end_matches('\0')
                .replace('\0', " ");
            if detail.chars().count() > MAX_DETAIL_CHARS {
                detail = detail.chars().take(MAX_DETAIL_CHARS - 1).collect();
                detail.push('…');
            }
            Some(TargetInfo {
                path: format!("pid/{pid}"),
                kind: "pid".to_owned(),
                namespace: None,
                available: true,
                detail,
            })
        })
        .collect()
}

/// All sources, and a short-lived cache so that completion stays fast while the list stays live.
#[derive(Debug)]
pub struct Targets {
    sources: Vec<Box<dyn TargetSource>>,
    cached: std::sync::Mutex<Option<(Instant, Vec<TargetInfo>)>>,
}

/// How long completion reuses a target list.
const CACHE_FOR: Duration = Duration::from_secs(2);

impl Default for Targets {
    fn default() -> Self {
        Targets {
            sources: vec![Box::new(KubeTargets), Box::new(LocalTargets)],
            cached: std::sync::Mutex::new(None),
        }
    }
}

impl Targets {
    /// Lists targets from every source that has a wanted kind.
    pub fn list(&self, query: &ListTargetsParams) -> Result<Listing, String> {
        let mut result = Listing::default();
        let (mut listed_any, mut failures) = (false, Vec::new());
        for source in &self.sources {
            let relevant = query.kinds.as_ref().is_none_or(|kinds| {
                kinds
                    .iter()
                    .any(|kind| source.kinds().contains(&kind.as_str()))
            });
            if !relevant {
                continue;
            }
            let listed = match source.list(query) {
                Ok(listed) => listed,
                Err(message) => {
                    // One unreachable cluster must not hide the local targets.
                    tracing::warn!(%message, source = ?source, "cannot list targets");
                    failures.push(message);
                    continue;
                }
            };
            listed_any = true;
            result.targets.extend(listed.targets);
            result.current_namespace = result.current_namespace.or(listed.current_namespace);
            for namespace in listed.namespaces {
                if !result.namespaces.contains(&namespace) {
                    result.namespaces.push(namespace);
                }
            }
        }
        if !listed_any && !failures.is_empty() {
            return Err(failures.join("; "));
        }
        Ok(result)
    }

    /// Every target, reusing a list made less than two seconds ago.
    pub fn for_completion(&self) -> Vec<TargetInfo> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made, targets)) = cached.as_ref()
            && made.elapsed() < CACHE_FOR
        {
            return targets.clone();
        }
        let targets = self
            .list(&ListTargetsParams::default())
            .map(|result| result.targets)
            .unwrap_or_default();
        *cached = Some((Instant::now(), targets.clone()));
        targets
    }
}

/// The title of the group of targets of `kind`.
pub fn group_title(kind: &str) -> String {
    match kind {
        "pod" => "Pods",
        "deployment" => "Deployments",
        "rollout" => "Rollouts",
        "statefulset" => "Stateful sets",
        "replicaset" => "Replica sets",
        "job" => "Jobs",
        "cronjob" => "Cron jobs",
        "service" => "Services",
        "sandbox" => "Sandbox pods",
        "pid" => "Local processes",
        "targetless" => "No target",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// The id and title of the recently used group.
pub const RECENT_GROUP: (&str, &str) = ("recent", "Recently used");

/// The picker's groups for `listing`, in display order: the listed targets of `recent` (most
/// recent first, `targetless` left to its own group), then one group per kind in the order the
/// sources listed them, `targetless` last. When a cluster answered and `pid` was not asked for
/// by name, the local processes are one [`MoreTargets`] entry instead of a long list.
pub fn groups(listing: &Listing, recent: &[String], kinds: Option<&[String]>) -> Vec<TargetGroup> {
    let is_recent =
        |target: &TargetInfo| target.kind != "targetless" && recent.contains(&target.path);
    let mut groups = Vec::new();
    let recent_targets: Vec<TargetInfo> = recent
        .iter()
        .filter_map(|path| listing.targets.iter().find(|t| t.path == *path))
        .filter(|target| is_recent(target))
        .cloned()
        .collect();
    if !recent_targets.is_empty() {
        groups.push(TargetGroup {
            id: RECENT_GROUP.0.to_owned(),
            title: RECENT_GROUP.1.to_owned(),
            targets: recent_targets,
            more: None,
        });
    }
    let processes_behind_entry = listing.current_namespace.is_some()
        && !kinds.is_some_and(|kinds| kinds.iter().any(|kind| kind == "pid"));
    let mut kinds_in_order: Vec<&str> = Vec::new();
    for target in &listing.targets {
        if !kinds_in_order.contains(&target.kind.as_str()) {
            kinds_in_order.push(&target.kind);
        }
    }
    // `targetless` last, whatever the sources' order.
    kinds_in_order.sort_by_key(|kind| *kind == "targetless");
    for kind in kinds_in_order {
        let targets: Vec<TargetInfo> = listing
            .targets
            .iter()
            .filter(|target| target.kind == kind && !is_recent(target))
            .cloned()
            .collect();
        if kind == "pid" && processes_behind_entry {
            groups.push(TargetGroup {
                id: kind.to_owned(),
                title: group_title(kind),
                more: Some(MoreTargets {
                    label: "Local processes…".to_owned(),
                    detail: format!("{} processes on this machine", targets.len()),
                    kinds: vec!["pid".to_owned()],
                }),
                targets: Vec::new(),
            });
            continue;
        }
        if targets.is_empty() {
            continue;
        }
        groups.push(TargetGroup {
            id: kind.to_owned(),
            title: group_title(kind),
            targets,
            more: None,
        });
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_this_machines_processes_and_targetless() {
        let targets = Targets::default();
        let all = targets.list(&ListTargetsParams::default()).unwrap();
        assert_eq!(all.current_namespace, None, "no cluster is configured here");
        assert!(all.targets.iter().any(|t| t.path == "targetless"));
        let parent = format!("pid/{}", std::os::unix::process::parent_id());
        assert!(all.targets.iter().any(|t| t.path == parent), "{parent}");
        let only_pids = targets
            .list(&ListTargetsParams {
                kinds: Some(vec!["pid".into()]),
                ..ListTargetsParams::default()
            })
            .unwrap();
        assert!(only_pids.targets.iter().all(|t| t.kind == "pid"));
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;

    fn target(kind: &str, path: &str) -> TargetInfo {
        TargetInfo {
            path: path.to_owned(),
            kind: kind.to_owned(),
            namespace: None,
            available: true,
            detail: String::new(),
        }
    }

    fn render(groups: &[TargetGroup]) -> String {
        groups
            .iter()
            .map(|group| {
                let entries: Vec<String> = match &group.more {
                    Some(more) => vec![format!("{} {:?}", more.label, more.kinds)],
                    None => group.targets.iter().map(|t| t.path.clone()).collect(),
                };
                format!("{}: {}", group.title, entries.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn listing(cluster: bool) -> Listing {
        let mut targets = Vec::new();
        if cluster {
            targets.extend([
                target("pod", "pod/api-1"),
                target("deployment", "deployment/api"),
                target("deployment", "deployment/web"),
            ]);
        }
        targets.extend([
            target("sandbox", "sandbox/demo"),
            target("targetless", "targetless"),
            target("pid", "pid/10"),
            target("pid", "pid/11"),
        ]);
        Listing {
            targets,
            current_namespace: cluster.then(|| "default".to_owned()),
            namespaces: Vec::new(),
        }
    }

    #[test]
    fn without_a_cluster_every_kind_is_a_group_and_no_target_is_last() {
        assert_eq!(
            render(&groups(&listing(false), &[], None)),
            "Sandbox pods: sandbox/demo\nLocal processes: pid/10, pid/11\nNo target: targetless"
        );
    }

    #[test]
    fn recent_targets_come_first_most_recent_first_and_only_once() {
        let recent = [
            "pid/11".to_owned(),
            "targetless".to_owned(),
            "deployment/web".to_owned(),
            "pod/gone".to_owned(),
        ];
        assert_eq!(
            render(&groups(&listing(true), &recent, None)),
            "Recently used: pid/11, deployment/web\nPods: pod/api-1\nDeployments: deployment/api\nSandbox pods: sandbox/demo\nLocal processes: Local processes… [\"pid\"]\nNo target: targetless"
        );
        assert_eq!(
            render(&groups(&listing(false), &recent, None)),
            "Recently used: pid/11\nSandbox pods: sandbox/demo\nLocal processes: pid/10\nNo target: targetless"
        );
    }

    #[test]
    fn asking_for_processes_by_name_lists_them_beside_a_cluster() {
        let pids: Listing = Listing {
            targets: listing(true)
                .targets
                .into_iter()
                .filter(|t| t.kind == "pid")
                .collect(),
            current_namespace: Some("default".to_owned()),
            namespaces: Vec::new(),
        };
        assert_eq!(
            render(&groups(&pids, &[], Some(&["pid".to_owned()]))),
            "Local processes: pid/10, pid/11"
        );
    }
}
