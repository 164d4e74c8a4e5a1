//! Listing targets for `mirrord/listTargets` and for completion inside `target`.
//!
//! Each kind of target comes from a [`TargetSource`]. Today there is one, [`LocalTargets`]
//! (sandbox pods, local processes, `targetless`). Kubernetes targets plug in here as a second
//! source built on `crates/kube` (pods, deployments, … with namespaces); the request and response
//! shapes already carry `namespace`, `currentNamespace` and `namespaces` for it.

use std::time::{Duration, Instant};

use crate::protocol::{ListTargetsParams, ListTargetsResult, TargetInfo};

/// A place targets come from.
pub trait TargetSource: Send + Sync + std::fmt::Debug {
    /// The target kinds this source lists (`sandbox`, `pid`, …).
    fn kinds(&self) -> &'static [&'static str];

    /// Lists the targets matching `query` (kinds are already filtered by the caller).
    fn list(&self, query: &ListTargetsParams) -> Result<ListTargetsResult, String>;
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

    fn list(&self, query: &ListTargetsParams) -> Result<ListTargetsResult, String> {
        let wants = |kind: &str| {
            query
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.iter().any(|wanted| wanted == kind))
        };
        let mut targets = Vec::new();
        if wants("sandbox") {
            // No sandbox state yet (or not readable without root) means no sandboxes.
            let sandboxes = mirrord_sandbox::Sandbox::list().unwrap_or_else(|error| {
                tracing::debug!(%error, "cannot list sandboxes");
                Vec::new()
            });
            for sandbox in sandboxes {
                targets.push(TargetInfo {
                    path: format!("sandbox/{}", sandbox.name),
                    kind: "sandbox".to_owned(),
                    namespace: None,
                    available: sandbox.is_running(),
                    detail: format!(
                        "sandbox pod at {} (process {})",
                        sandbox.sandbox_ip, sandbox.target_pid
                    ),
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
        Ok(ListTargetsResult {
            targets,
            current_namespace: None,
            namespaces: Vec::new(),
        })
    }
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
            sources: vec![Box::new(LocalTargets)],
            cached: std::sync::Mutex::new(None),
        }
    }
}

impl Targets {
    /// Lists targets from every source that has a wanted kind.
    pub fn list(&self, query: &ListTargetsParams) -> Result<ListTargetsResult, String> {
        let mut result = ListTargetsResult::default();
        for source in &self.sources {
            let relevant = query.kinds.as_ref().is_none_or(|kinds| {
                kinds
                    .iter()
                    .any(|kind| source.kinds().contains(&kind.as_str()))
            });
            if !relevant {
                continue;
            }
            let listed = source.list(query)?;
            result.targets.extend(listed.targets);
            result.current_namespace = result.current_namespace.or(listed.current_namespace);
            for namespace in listed.namespaces {
                if !result.namespaces.contains(&namespace) {
                    result.namespaces.push(namespace);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_this_machines_processes_and_targetless() {
        let targets = Targets::default();
        let all = targets.list(&ListTargetsParams::default()).unwrap();
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
