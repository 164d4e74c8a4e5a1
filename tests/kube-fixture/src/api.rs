//! The HTTP API: discovery, get/list/watch with selectors and pagination, create, replace, patch
//! and delete, the `status` and `ephemeralcontainers` subresources, `Status` errors, and `Table`
//! output for kubectl's human-readable printing. `pods/portforward` is in `portforward.rs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::resources::Resource;
use crate::store::{FieldSelector, LabelSelector, merge_patch};
use crate::table;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A response body fed chunk by chunk (watch streams).
struct ChannelBody {
    chunks_rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks_rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(value).expect("json serializes")))
        .expect("valid response")
}

/// A `Status` failure, as the API server sends it.
pub(crate) fn status_error(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    json_response(code, &status)
}

fn not_found(resource: &Resource, name: &str) -> Response<Body> {
    let mut details = json!({"name": name, "kind": resource.plural});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", resource.qualified()),
        Some(details),
    )
}

fn invalid(resource: &Resource, name: &str, causes: &[(String, String)]) -> Response<Body> {
    let text: Vec<String> = causes
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect();
    let message = format!(
        "{} \"{name}\" is invalid: {}",
        resource.qualified_kind(),
        if text.len() == 1 {
            text[0].clone()
        } else {
            format!("[{}]", text.join(", "))
        }
    );
    let causes: Vec<Value> = causes
        .iter()
        .map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field}))
        .collect();
    let mut details = json!({"name": name, "kind": resource.kind, "causes": causes});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    status_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &message,
        Some(details),
    )
}

/// Where a request goes, once its path is parsed.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) resource: Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

pub(crate) async fn handle(
    cluster: Arc<Cluster>,
    request: Request<Incoming>,
    secure: bool,
) -> Result<Response<Body>, Infallible> {
    if secure {
        let expected = format!("Bearer {}", cluster.token);
        let authorized = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected);
        if !authorized {
            return Ok(status_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
                None,
            ));
        }
    }
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query = parse_query(request.uri().query().unwrap_or(""));
    tracing::debug!(method = %request.method(), %path, ?query, "request");
    let catalog = &cluster.catalog;
    let response = match segments.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-mirrord-fixture",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
                "platform": "linux/amd64",
            }),
        ),
        ["healthz"] | ["readyz"] | ["livez"] => Response::new(full("ok")),
        ["api"] => json_response(
            StatusCode::OK,
            &catalog.core_versions(&cluster.server_address),
        ),
        ["apis"] => json_response(StatusCode::OK, &catalog.group_list()),
        ["apis", group] => match catalog.group(group) {
            Some(document) => json_response(StatusCode::OK, &document),
            None => page_not_found(),
        },
        ["api", "v1"] => json_response(
            StatusCode::OK,
            &catalog.resource_list("", "v1").expect("core exists"),
        ),
        ["apis", group, version] => match catalog.resource_list(group, version) {
            Some(document) => json_response(StatusCode::OK, &document),
            None => page_not_found(),
        },
        ["api", "v1", rest @ ..] => route(&cluster, "", "v1", rest, request, &query).await,
        ["apis", group, version, rest @ ..] => {
            let (group, version) = ((*group).to_owned(), (*version).to_owned());
            route(&cluster, &group, &version, rest, request, &query).await
        }
        _ => page_not_found(),
    };
    Ok(response)
}

fn page_not_found() -> Response<Body> {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (bytes[i], decoded) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(
    cluster: &Arc<Cluster>,
    group: &str,
    version: &str,
    rest: &[&str],
    request: Request<Incoming>,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let (namespace, rest) = match rest {
        ["namespaces", namespace, plural, tail @ ..] => (
            Some((*namespace).to_owned()),
            [&[*plural][..], tail].concat(),
        ),
        other => (None, other.to_vec()),
    };
    let Some(resource) = rest
        .first()
        .and_then(|plural| cluster.catalog.find(group, version, plural))
    else {
        return page_not_found();
    };
    if namespace.is_some() && !resource.namespaced {
        return page_not_found();
    }
    let target = Target {
        resource,
        namespace: namespace
            .or_else(|| (resource.namespaced && rest.len() > 1).then(|| "default".to_owned())),
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    };
    if rest.len() > 3 {
        return page_not_found();
    }
    let verb = match (
        request.method(),
        &target.name,
        target.subresource.as_deref(),
    ) {
        (_, _, Some("portforward")) => "create",
        (&Method::GET, None, _) if is_true(query.get("watch")) => "watch",
        (&Method::GET, None, _) => "list",
        (&Method::GET, Some(_), _) => "get",
        (&Method::POST, None, _) => "create",
        (&Method::DELETE, Some(_), _) => "delete",
        (&Method::DELETE, None, _) => "deletecollection",
        (&Method::PATCH, Some(_), _) => "patch",
        (&Method::PUT, Some(_), _) => "update",
        _ => {
            return status_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                None,
            );
        }
    };
    if let Some(denied) = cluster.forbidden_message(verb, &target) {
        let mut details =
            json!({"name": target.name.clone().unwrap_or_default(), "kind": resource.plural});
        if !resource.group.is_empty() {
            details["group"] = json!(resource.group);
        }
        return status_error(StatusCode::FORBIDDEN, "Forbidden", &denied, Some(details));
    }
    let wants_table = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("as=Table"));
    match (verb, target.subresource.as_deref()) {
        ("create", Some("portforward")) => {
            crate::portforward::serve(Arc::clone(cluster), &target, request, query).await
        }
        (_, Some(sub)) if !resource.subresources.contains(&sub) => page_not_found(),
        ("get", Some("log")) => log(cluster, &target),
        ("get", _) => get(cluster, &target, wants_table),
        ("list", _) => list(cluster, &target, query, wants_table),
        ("watch", _) => watch(cluster, &target, query, wants_table),
        ("create" | "update", _) if !is_json(&request) => unsupported_media_type(&request),
        ("create", _) => match read_json(request).await {
            Ok(body) => create(cluster, &target, body),
            Err(response) => response,
        },
        ("delete", _) => delete(cluster, &target),
        ("patch", sub) => {
            let content_type = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            match read_json(request).await {
                Ok(body) => patch(cluster, &target, sub, &content_type, &body),
                Err(response) => response,
            }
        }
        ("update", sub) => match read_json(request).await {
            Ok(body) => replace(cluster, &target, sub, body),
            Err(response) => response,
        },
        _ => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

/// Objects are JSON here; clients that prefer protobuf fall back to JSON after a 415.
fn is_json(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("application/json") || t.starts_with("*/*"))
}

fn unsupported_media_type(request: &Request<Incoming>) -> Response<Body> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    status_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        &format!(
            "the body of the request was in an unknown format - accepted media types include: application/json (got {content_type})"
        ),
        None,
    )
}

fn is_true(value: Option<&String>) -> bool {
    value.is_some_and(|v| v == "1" || v == "true")
}

async fn read_json(request: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).map_err(|error| {
        status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the body of the request was in an unknown format: {error}"),
            None,
        )
    })
}

fn get(cluster: &Cluster, target: &Target, wants_table: bool) -> Response<Body> {
    let name = target.name.as_deref().unwrap_or("");
    let store = cluster.store();
    let Some(object) = store.get(
        &target.resource.qualified(),
        target.namespace.as_deref().unwrap_or(""),
        name,
    ) else {
        return not_found(&target.resource, name);
    };
    if wants_table && target.subresource.is_none() {
        let rv = store.resource_version().to_string();
        return json_response(
            StatusCode::OK,
            &table::table(&target.resource, std::slice::from_ref(object), &rv, None),
        );
    }
    json_response(StatusCode::OK, object)
}

fn log(cluster: &Cluster, target: &Target) -> Response<Body> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    if cluster.store().get("pods", &namespace, &name).is_none() {
        return not_found(&target.resource, &name);
    }
    let text = cluster.pod_log(&namespace, &name);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(text))
        .expect("valid response")
}

#[allow(
    clippy::result_large_err,
    reason = "the error is the response to send, built once per request"
)]
fn selectors(
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), Response<Body>> {
    let bad = |message: String| status_error(StatusCode::BAD_REQUEST, "BadRequest", &message, None);
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| bad(format!("unable to parse requirement: {e}")))?;
    let fields =
        FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)).map_err(bad)?;
    Ok((labels, fields))
}

fn list(
    cluster: &Cluster,
    target: &Target,
    query: &HashMap<String, String>,
    wants_table: bool,
) -> Response<Body> {
    let (labels, fields) = match selectors(query) {
        Ok(selectors) => selectors,
        Err(response) => return response,
    };
    let store = cluster.store();
    let matching: Vec<Value> = store
        .list(&target.resource.qualified(), target.namespace.as_deref())
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .cloned()
        .collect();
    // Continue tokens are opaque to clients; here: the offset into the (stable) ordered list.
    let start: usize = match query.get("continue").filter(|c| !c.is_empty()) {
        None => 0,
        Some(token) => match token.strip_prefix("offset-").and_then(|n| n.parse().ok()) {
            Some(offset) => offset,
            None => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "continue key is not valid: unknown format",
                    None,
                );
            }
        },
    };
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(matching.len());
    let page: Vec<Value> = matching
        .get(start.min(matching.len())..end)
        .unwrap_or_default()
        .to_vec();
    let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
    if end < matching.len() {
        metadata["continue"] = json!(format!("offset-{end}"));
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    if wants_table {
        return json_response(
            StatusCode::OK,
            &table::table(
                &target.resource,
                &page,
                &store.resource_version().to_string(),
                metadata.get("continue").and_then(Value::as_str),
            ),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", target.resource.kind),
            "apiVersion": target.resource.api_version(),
            "metadata": metadata,
            "items": page,
        }),
    )
}

fn watch(
    cluster: &Arc<Cluster>,
    target: &Target,
    query: &HashMap<String, String>,
    wants_table: bool,
) -> Response<Body> {
    let (labels, fields) = match selectors(query) {
        Ok(selectors) => selectors,
        Err(response) => return response,
    };
    let resource = target.resource;
    let qualified = resource.qualified();
    let namespace = target.namespace.clone();
    let since: Option<u64> = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0")
        .and_then(|rv| rv.parse().ok());
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let (mut changes_rx, initial) = {
        let store = cluster.store();
        let changes_rx = store.subscribe();
        let initial: Vec<(&'static str, Value)> = match since {
            Some(rv) => store
                .history_after(&qualified, rv)
                .into_iter()
                .filter(|c| namespace.as_ref().is_none_or(|ns| *ns == c.namespace))
                .map(|c| (c.kind, c.object))
                .collect(),
            None => store
                .list(&qualified, namespace.as_deref())
                .into_iter()
                .map(|o| ("ADDED", o.clone()))
                .collect(),
        };
        (changes_rx, initial)
    };
    let (chunks_tx, chunks_rx) = mpsc::channel::<Bytes>(64);
    let encode = move |kind: &str, object: &Value| -> Bytes {
        let object = if wants_table {
            table::table(&resource, std::slice::from_ref(object), "", None)
        } else {
            object.clone()
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).expect("json serializes");
        line.push(b'\n');
        Bytes::from(line)
    };
    let matches = move |object: &Value| {
        labels.matches(&object["metadata"]["labels"]) && fields.matches(object)
    };
    let shutdown = cluster.shutdown_rx();
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        for (kind, object) in initial {
            if matches(&object) && chunks_tx.send(encode(kind, &object)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                change = changes_rx.recv() => match change {
                    Ok(change) => {
                        if change.resource != qualified
                            || namespace.as_ref().is_some_and(|ns| *ns != change.namespace)
                            || !matches(&change.object)
                        {
                            continue;
                        }
                        if chunks_tx.send(encode(change.kind, &change.object)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let expired = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410});
                        let _ = chunks_tx.send(encode("ERROR", &expired)).await;
                        return;
                    }
                    Err(_) => return,
                },
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(BoxBody::new(ChannelBody { chunks_rx }))
        .expect("valid response")
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_dns_label(name: &str) -> bool {
    is_dns_subdomain(name) && name.len() <= 63 && !name.contains('.')
}

/// Validation the real API server does that clients can trip over; each cause is `(field, message)`.
fn validate(resource: &Resource, object: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push((
            "metadata.name".to_owned(),
            "Required value: name or generateName is required".to_owned(),
        ));
    } else if !is_dns_subdomain(name) {
        causes.push((
            "metadata.name".to_owned(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    for (key, value) in object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let text = value.as_str().unwrap_or("");
        if text.len() > 63
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            causes.push((format!("metadata.labels.{key}"), format!("Invalid value: {text:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")));
        }
    }
    let pod_spec = match resource.kind {
        "Pod" => Some(("spec", &object["spec"])),
        "Job" => Some(("spec.template.spec", &object["spec"]["template"]["spec"])),
        _ => None,
    };
    if let Some((prefix, spec)) = pod_spec {
        let containers = spec["containers"].as_array().cloned().unwrap_or_default();
        if containers.is_empty() {
            causes.push((format!("{prefix}.containers"), "Required value".to_owned()));
        }
        for (index, container) in containers.iter().enumerate() {
            causes.extend(validate_container(
                &format!("{prefix}.containers[{index}]"),
                container,
            ));
        }
        if resource.kind == "Job" {
            let policy = spec["restartPolicy"].as_str().unwrap_or("");
            if policy != "Never" && policy != "OnFailure" {
                causes.push((
                    format!("{prefix}.restartPolicy"),
                    format!(
                        "Unsupported value: {policy:?}: supported values: \"OnFailure\", \"Never\""
                    ),
                ));
            }
        }
    }
    if resource.kind == "Secret" {
        for (key, value) in object["data"].as_object().into_iter().flatten() {
            if value
                .as_str()
                .and_then(crate::cluster::base64_decode)
                .is_none()
            {
                causes.push((
                    format!("data[{key}]"),
                    "Invalid value: illegal base64 data".to_owned(),
                ));
            }
        }
    }
    causes
}

fn validate_container(field: &str, container: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let name = container["name"].as_str().unwrap_or("");
    if !is_dns_label(name) {
        causes.push((format!("{field}.name"), format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")));
    }
    if container["image"].as_str().unwrap_or("").trim().is_empty() {
        causes.push((format!("{field}.image"), "Required value".to_owned()));
    }
    for (index, capability) in container["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !capability
            .as_str()
            .is_some_and(|c| c.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        {
            causes.push((
                format!("{field}.securityContext.capabilities.add[{index}]"),
                "Invalid value".to_owned(),
            ));
        }
    }
    causes
}

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let mut state = u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15;
    for byte in &mut bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = ALPHABET[(state % ALPHABET.len() as u64) as usize];
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn create(cluster: &Cluster, target: &Target, mut object: Value) -> Response<Body> {
    let resource = target.resource;
    if target.name.is_some() {
        return page_not_found();
    }
    if object["kind"].as_str().is_some_and(|k| k != resource.kind) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                object["apiVersion"],
                resource.api_version()
            ),
            None,
        );
    }
    object["kind"] = json!(resource.kind);
    object["apiVersion"] = json!(resource.api_version());
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if resource.namespaced {
        let path_namespace = target
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        match object["metadata"]["namespace"].as_str() {
            Some(ns) if ns != path_namespace => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                    None,
                );
            }
            _ => object["metadata"]["namespace"] = json!(path_namespace),
        }
    }
    if object["metadata"]["name"].as_str().unwrap_or("").is_empty()
        && let Some(prefix) = object["metadata"]["generateName"].as_str()
    {
        object["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix()));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let causes = validate(&resource, &object);
    if !causes.is_empty() {
        return invalid(&resource, &name, &causes);
    }
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let mut store = cluster.store();
    if resource.namespaced && store.get("namespaces", "", &namespace).is_none() {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("namespaces \"{namespace}\" not found"),
            Some(json!({"name": namespace, "kind": "namespaces"})),
        );
    }
    if store
        .get(&resource.qualified(), &namespace, &name)
        .is_some()
    {
        let mut details = json!({"name": name, "kind": resource.plural});
        if !resource.group.is_empty() {
            details["group"] = json!(resource.group);
        }
        return status_error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", resource.qualified()),
            Some(details),
        );
    }
    if let Some(object) = object.as_object_mut() {
        object.entry("status").or_insert_with(|| json!({}));
    }
    if resource.kind == "Pod" && object["status"]["phase"].is_null() {
        object["status"]["phase"] = json!("Pending");
    }
    let stored = store.insert(&resource.qualified(), object);
    drop(store);
    cluster.wake();
    json_response(StatusCode::CREATED, &stored)
}

fn delete(cluster: &Cluster, target: &Target) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    let removed = cluster.store().remove(
        &target.resource.qualified(),
        target.namespace.as_deref().unwrap_or(""),
        &name,
    );
    cluster.wake();
    match removed {
        Some(object) => json_response(StatusCode::OK, &object),
        None => not_found(&target.resource, &name),
    }
}

/// Strategic merge patch for the lists this server's clients patch (containers and ephemeral
/// containers merge by name); everything else merges as RFC 7386.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in fields {
        let by_name = matches!(
            key.as_str(),
            "containers" | "ephemeralContainers" | "initContainers" | "env"
        );
        let slot = target
            .as_object_mut()
            .expect("object")
            .entry(key.clone())
            .or_insert(Value::Null);
        match (by_name, value) {
            (_, Value::Null) => {
                target.as_object_mut().expect("object").remove(key);
            }
            (true, Value::Array(items)) => {
                let mut existing = slot.as_array().cloned().unwrap_or_default();
                for item in items {
                    match existing.iter_mut().find(|e| e["name"] == item["name"]) {
                        Some(current) => strategic_merge(current, item),
                        None => existing.push(item.clone()),
                    }
                }
                *slot = Value::Array(existing);
            }
            (false, Value::Object(_)) => strategic_merge(slot, value),
            _ => *slot = value.clone(),
        }
    }
}

fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    for operation in operations.as_array().ok_or("a JSON patch must be a list")? {
        let op = operation["op"].as_str().unwrap_or("");
        let path = operation["path"].as_str().unwrap_or("");
        let (parent_path, last) = path.rsplit_once('/').ok_or("bad path")?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let parent = target
            .pointer_mut(parent_path)
            .ok_or_else(|| format!("path {path} does not exist"))?;
        match (op, parent) {
            ("add" | "replace", Value::Object(map)) => {
                map.insert(last, operation["value"].clone());
            }
            ("add", Value::Array(items)) if last == "-" => items.push(operation["value"].clone()),
            ("add", Value::Array(items)) => {
                let index: usize = last.parse().map_err(|_| "bad index")?;
                if index > items.len() {
                    return Err(format!("index {index} out of range"));
                }
                items.insert(index, operation["value"].clone());
            }
            ("replace", Value::Array(items)) => {
                let index: usize = last.parse().map_err(|_| "bad index")?;
                *items.get_mut(index).ok_or("index out of range")? = operation["value"].clone();
            }
            ("remove", Value::Object(map)) => {
                map.remove(&last)
                    .ok_or_else(|| format!("path {path} does not exist"))?;
            }
            ("remove", Value::Array(items)) => {
                let index: usize = last.parse().map_err(|_| "bad index")?;
                if index >= items.len() {
                    return Err("index out of range".to_owned());
                }
                items.remove(index);
            }
            _ => return Err(format!("unsupported operation {op:?} at {path}")),
        }
    }
    Ok(())
}

fn patch(
    cluster: &Cluster,
    target: &Target,
    subresource: Option<&str>,
    content_type: &str,
    body: &Value,
) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_default();
    let resource = target.resource;
    let Some(current) = cluster
        .store()
        .get(&resource.qualified(), &namespace, &name)
        .cloned()
    else {
        return not_found(&resource, &name);
    };
    let mut patched = current.clone();
    if content_type.starts_with("application/json-patch+json") {
        if let Err(message) = json_patch(&mut patched, body) {
            return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message, None);
        }
    } else if content_type.starts_with("application/strategic-merge-patch+json") {
        strategic_merge(&mut patched, body);
    } else if content_type.starts_with("application/merge-patch+json") {
        merge_patch(&mut patched, body);
    } else {
        return status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})"
            ),
            None,
        );
    }
    store_changed(cluster, target, subresource, &current, patched)
}

fn replace(
    cluster: &Cluster,
    target: &Target,
    subresource: Option<&str>,
    body: Value,
) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_default();
    let resource = target.resource;
    let Some(current) = cluster
        .store()
        .get(&resource.qualified(), &namespace, &name)
        .cloned()
    else {
        return not_found(&resource, &name);
    };
    if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        return status_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified()
            ),
            Some(json!({"name": name, "kind": resource.plural})),
        );
    }
    store_changed(cluster, target, subresource, &current, body)
}

/// Applies a changed object through the rules of the (sub)resource and stores it.
fn store_changed(
    cluster: &Cluster,
    target: &Target,
    subresource: Option<&str>,
    current: &Value,
    changed: Value,
) -> Response<Body> {
    let resource = target.resource;
    let name = target.name.clone().unwrap_or_default();
    let mut next = current.clone();
    match subresource {
        Some("status") => next["status"] = changed["status"].clone(),
        Some("ephemeralcontainers") => {
            let before = current["spec"]["ephemeralContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let after = changed["spec"]["ephemeralContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut causes = Vec::new();
            for (index, old) in before.iter().enumerate() {
                if after.get(index) != Some(old) {
                    causes.push((
                        "spec.ephemeralContainers".to_owned(),
                        "Forbidden: existing ephemeral containers may not be removed or changed"
                            .to_owned(),
                    ));
                    break;
                }
            }
            let regular: Vec<&str> = current["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            for (index, container) in after.iter().enumerate().skip(before.len()) {
                let field = format!("spec.ephemeralContainers[{index}]");
                causes.extend(validate_container(&field, container));
                if container["name"]
                    .as_str()
                    .is_some_and(|n| regular.contains(&n))
                {
                    causes.push((format!("{field}.name"), "Duplicate value".to_owned()));
                }
                for forbidden in ["ports", "resources", "readinessProbe", "livenessProbe"] {
                    if !container[forbidden].is_null() {
                        causes.push((
                            format!("{field}.{forbidden}"),
                            "Forbidden: cannot be set for an Ephemeral Container".to_owned(),
                        ));
                    }
                }
                if let Some(target_name) = container["targetContainerName"].as_str()
                    && !regular.contains(&target_name)
                {
                    causes.push((
                        format!("{field}.targetContainerName"),
                        format!("Not found: {target_name:?}"),
                    ));
                }
            }
            if !causes.is_empty() {
                return invalid(&resource, &name, &causes);
            }
            next["spec"]["ephemeralContainers"] = json!(after);
        }
        _ => {
            let status = current["status"].clone();
            next = changed;
            next["status"] = status;
            next["metadata"]["uid"] = current["metadata"]["uid"].clone();
            next["metadata"]["creationTimestamp"] =
                current["metadata"]["creationTimestamp"].clone();
            next["metadata"]["name"] = current["metadata"]["name"].clone();
            next["metadata"]["namespace"] = current["metadata"]["namespace"].clone();
            next["kind"] = current["kind"].clone();
            next["apiVersion"] = current["apiVersion"].clone();
            let causes = validate(&resource, &next);
            if !causes.is_empty() {
                return invalid(&resource, &name, &causes);
            }
        }
    }
    let stored = cluster.store().update(&resource.qualified(), next);
    cluster.wake();
    json_response(StatusCode::OK, &stored)
}
