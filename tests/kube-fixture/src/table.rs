//! Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for when it prints for people.

use serde_json::{Value, json};

use crate::resources::Resource;
use crate::store::parse_rfc3339;

fn column(name: &str, kind: &str, format: &str, priority: u32) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": name, "priority": priority})
}

/// A table of `objects` with the columns kubectl shows for their kind.
pub(crate) fn table(
    resource: &Resource,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let columns = match resource.kind {
        "Pod" => vec![
            column("Name", "string", "name", 0),
            column("Ready", "string", "", 0),
            column("Status", "string", "", 0),
            column("Restarts", "string", "", 0),
            column("Age", "string", "", 0),
            column("IP", "string", "", 1),
            column("Node", "string", "", 1),
        ],
        "Deployment" => vec![
            column("Name", "string", "name", 0),
            column("Ready", "string", "", 0),
            column("Up-to-date", "integer", "", 0),
            column("Available", "integer", "", 0),
            column("Age", "string", "", 0),
        ],
        _ => vec![
            column("Name", "string", "name", 0),
            column("Age", "string", "", 0),
        ],
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let name = object["metadata"]["name"].clone();
            let age = age(object["metadata"]["creationTimestamp"].as_str());
            let cells = match resource.kind {
                "Pod" => {
                    let statuses = object["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
                    let total = object["spec"]["containers"].as_array().map_or(0, Vec::len);
                    let ready = statuses.iter().filter(|s| s["ready"] == json!(true)).count();
                    let restarts: u64 = statuses.iter().filter_map(|s| s["restartCount"].as_u64()).sum();
                    let waiting = statuses
                        .iter()
                        .find_map(|s| s["state"]["waiting"]["reason"].as_str())
                        .map(str::to_owned);
                    let status = waiting.unwrap_or_else(|| object["status"]["phase"].as_str().unwrap_or("Unknown").to_owned());
                    vec![
                        name,
                        json!(format!("{ready}/{total}")),
                        json!(status),
                        json!(restarts.to_string()),
                        json!(age),
                        json!(object["status"]["podIP"].as_str().unwrap_or("<none>")),
                        json!(object["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                    ]
                }
                "Deployment" => {
                    let wanted = object["spec"]["replicas"].as_u64().unwrap_or(1);
                    let ready = object["status"]["readyReplicas"].as_u64().unwrap_or(0);
                    vec![
                        name,
                        json!(format!("{ready}/{wanted}")),
                        json!(object["status"]["updatedReplicas"].as_u64().unwrap_or(0)),
                        json!(object["status"]["availableReplicas"].as_u64().unwrap_or(0)),
                        json!(age),
                    ]
                }
                _ => vec![name, json!(age)],
            };
            let metadata = object["metadata"].clone();
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
            })
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// `45s`, `12m`, `3h`, `20d`, as kubectl prints ages.
fn age(created: Option<&str>) -> String {
    let Some(created) = created.and_then(parse_rfc3339) else {
        return "<unknown>".to_owned();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(created);
    let seconds = now.saturating_sub(created);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}
