//! The object store: every object as JSON, keyed by resource, namespace and name; one
//! resourceVersion counter; the history of changes that watches replay; label and field selectors.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// `(qualified resource, namespace ("" for cluster-scoped), name)`.
pub(crate) type Key = (String, String, String);

/// A change, as a watch reports it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) resource_version: u64,
    pub(crate) resource: String,
    pub(crate) namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub(crate) kind: &'static str,
    pub(crate) object: Value,
}

/// The objects and their history.
#[derive(Debug)]
pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    history: Vec<Change>,
    changes_tx: broadcast::Sender<Change>,
    next_uid: u64,
}

impl Store {
    pub(crate) fn new() -> Store {
        let (changes_tx, _) = broadcast::channel(4096);
        Store {
            objects: BTreeMap::new(),
            resource_version: 100,
            history: Vec::new(),
            changes_tx,
            next_uid: 1,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes_tx.subscribe()
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Changes after `after` to `resource`, for a watch that starts there.
    pub(crate) fn history_after(&self, resource: &str, after: u64) -> Vec<Change> {
        self.history
            .iter()
            .filter(|c| c.resource == resource && c.resource_version > after)
            .cloned()
            .collect()
    }

    pub(crate) fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(resource.to_owned(), namespace.to_owned(), name.to_owned()))
    }

    /// Objects of `resource`, in `namespace` (`None`: every namespace), in key order.
    pub(crate) fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && namespace.is_none_or(|wanted| ns == wanted))
            .map(|(_, object)| object)
            .collect()
    }

    /// A fresh uid in the usual 8-4-4-4-12 shape.
    pub(crate) fn new_uid(&mut self) -> String {
        self.next_uid += 1;
        format!("6d1f0c2e-0000-4000-8000-{:012x}", self.next_uid)
    }

    /// Stores a new object (the caller checked it does not exist), filling server-set metadata.
    pub(crate) fn insert(&mut self, resource: &str, mut object: Value) -> Value {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if object["metadata"]["uid"].as_str().is_none() {
            object["metadata"]["uid"] = json!(self.new_uid());
        }
        if object["metadata"]["creationTimestamp"].as_str().is_none() {
            object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        }
        self.commit(resource, &namespace, &name, object, "ADDED")
    }

    /// Replaces an existing object.
    pub(crate) fn update(&mut self, resource: &str, object: Value) -> Value {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        self.commit(resource, &namespace, &name, object, "MODIFIED")
    }

    /// Removes an object; returns it as it was.
    pub(crate) fn remove(&mut self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (resource.to_owned(), namespace.to_owned(), name.to_owned());
        let mut object = self.objects.remove(&key)?;
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.record(resource, namespace, "DELETED", object.clone());
        Some(object)
    }

    fn commit(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        mut object: Value,
        kind: &'static str,
    ) -> Value {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.objects.insert(
            (resource.to_owned(), namespace.to_owned(), name.to_owned()),
            object.clone(),
        );
        self.record(resource, namespace, kind, object.clone());
        object
    }

    fn record(&mut self, resource: &str, namespace: &str, kind: &'static str, object: Value) {
        let change = Change {
            resource_version: self.resource_version,
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            kind,
            object,
        };
        self.history.push(change.clone());
        let _ = self.changes_tx.send(change);
    }
}

/// Now as RFC 3339 UTC (`2026-01-02T03:04:05Z`), without a date library.
pub(crate) fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(seconds)
}

pub(crate) fn rfc3339(epoch_seconds: u64) -> String {
    let days = epoch_seconds / 86_400;
    let rest = epoch_seconds % 86_400;
    // Civil-from-days (proleptic Gregorian), as in Howard Hinnant's date algorithms.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`…Z` only).
pub(crate) fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
    );
    let mut time_parts = time.split(':').map(|p| p.parse::<i64>());
    let (hour, minute, second) = (
        time_parts.next()?.ok()?,
        time_parts.next()?.ok()?,
        time_parts.next()?.ok()?,
    );
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let day_of_year = (153 * mp + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k`).
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("==") {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once('=') {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, values)) = part.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_owned(), set_values(values)?)
            } else if let Some((key, values)) = part.split_once(" in ") {
                Requirement::In(key.trim().to_owned(), set_values(values)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.to_owned())
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector { requirements })
    }

    pub(crate) fn matches(&self, labels: &Value) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => get(key) == Some(value.as_str()),
                Requirement::NotEquals(key, value) => get(key) != Some(value.as_str()),
                Requirement::In(key, values) => {
                    get(key).is_some_and(|v| values.iter().any(|w| w == v))
                }
                Requirement::NotIn(key, values) => {
                    get(key).is_none_or(|v| !values.iter().any(|w| w == v))
                }
                Requirement::Exists(key) => get(key).is_some(),
                Requirement::DoesNotExist(key) => get(key).is_none(),
            })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("never empty").push(c);
    }
    parts
}

fn set_values(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set: {text:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

/// A parsed field selector (`metadata.name=x,status.phase!=Failed`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    requirements: Vec<(Vec<String>, bool, String)>,
}

impl FieldSelector {
    pub(crate) fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, equal, value) = if let Some((path, value)) = part.split_once("!=") {
                (path, false, value)
            } else if let Some((path, value)) = part.split_once("==") {
                (path, true, value)
            } else if let Some((path, value)) = part.split_once('=') {
                (path, true, value)
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            };
            requirements.push((
                path.trim().split('.').map(str::to_owned).collect(),
                equal,
                value.trim().to_owned(),
            ));
        }
        Ok(FieldSelector { requirements })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(path, equal, value)| {
            let mut current = object;
            for segment in path {
                current = &current[segment.as_str()];
            }
            let actual = match current {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().expect("made an object");
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "api", "tier": "web"});
        let check = |selector: &str| LabelSelector::parse(selector).unwrap().matches(&labels);
        assert!(check("app=api"));
        assert!(check("app==api,tier"));
        assert!(check("app in (api,db),!mirrord.dev/agent"));
        assert!(!check("app notin (api)"));
        assert!(!check("app!=api"));
        assert!(check(""));
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
    }
}
