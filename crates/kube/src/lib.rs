//! Kubernetes targets for mirrord, on kube-rs: build a client the way kubectl finds its cluster
//! ([`Cluster::connect`]), list targets ([`list_targets`], what `mirrord ls` and the IDE's
//! `mirrord/listTargets` show), resolve a target path to a pod and container
//! ([`resolve_target`]), run the agent next to it ([`spawn_agent`]: a Job on the target's node or
//! an ephemeral container, the token in a Secret, readiness with fast failure), and reach the
//! agent through the API server's port-forward ([`connect_agent`]); with `feature.copy_target`,
//! copy the target's pod first and undo it when the session ends ([`copy_target`], [`end_copy`]).
//!
//! The crate does no process management and prints nothing; it depends on `config` only (of
//! ours). The agent itself finds the target container's process from its container ID.

#![forbid(unsafe_code)]

mod client;
mod copy;
mod error;
mod http_client;
mod list;
mod portforward;
mod resolve;
mod restore;
mod spawn;
mod spec;
mod target;
mod undo;

pub use client::{Cluster, KUBE_SETTINGS_ENV, KubeSettings};
pub use copy::{
    COPY_OF_LABEL, COPY_SESSION_ENV, CopySession, ScaledDown, copy_pod, copy_target, end_copy,
    hand_copy_to_job,
};
pub use error::KubeError;
pub use list::{LISTED_KINDS, ListOptions, TargetEntry, TargetListing, list_targets};
pub use portforward::connect_agent;
pub use resolve::{
    Resolved, ResolvedTarget, TARGETLESS_PATH, resolve_target, resolve_with_replicas,
};
pub use restore::{
    Restored, SCALED_DOWN_ANNOTATION, SCALED_DOWN_BY_ANNOTATION, restore_patch, restore_replicas,
};
pub use spawn::{AgentPod, spawn_agent};
pub use spec::{
    AGENT_CAPABILITIES, AGENT_CONTAINER, AGENT_LABEL, AgentSpec, SESSION_LABEL, TOKEN_ENV,
    TOKEN_KEY,
};
pub use target::{
    DEFAULT_CONTAINER_ANNOTATION, MESH_CONTAINERS, TargetPath, app_containers, choose_container,
    close_matches, is_mesh_container, pod_is_ready, selector_string,
};
pub use undo::{grant_undo, revoke_undo, undo_object_name, undo_role, undo_service_account};
