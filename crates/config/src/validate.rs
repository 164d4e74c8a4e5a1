//! Validation of a parsed [`Node`] tree against the generated JSON Schema, collecting every
//! problem with its key path and span.
//!
//! The validator interprets the subset of JSON Schema (draft-07) that `schemars` emits for our
//! types — `$ref`, `type`, `const`, `enum`, `anyOf`/`oneOf`/`allOf`, `not`, `properties`,
//! `additionalProperties`, `required`, `propertyNames`, `items` (list and tuple forms),
//! `minItems`/`maxItems`, `minimum`/`maximum`, `pattern` and `format: regex` — plus our
//! extensions: `patternErrorMessage` (as VS Code reads it), `deprecated`/`deprecationMessage`,
//! `x-mirrord-replaced-by`, `x-mirrord-unsupported` and `x-mirrord-message`. Because the
//! schema is generated from the Rust types, validation and deserialization cannot drift apart.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::diagnostic::{KeyPath, RawDiagnostic};
use crate::schema_nav::{SchemaNav, json_type};
use crate::source::{Node, NodeKind, Span};
use crate::suggest;

/// Validates `node` against `root_schema`, returning every problem found, or `None` when
/// `cancelled` said to stop (it is asked every [`CANCEL_CHECK_INTERVAL`] values).
pub(crate) fn validate(
    node: &Node,
    root_schema: &Value,
    cancelled: &dyn Fn() -> bool,
) -> Option<Vec<RawDiagnostic>> {
    let validator = Validator {
        nav: SchemaNav::new(root_schema),
        cancelled,
        visited: Cell::new(0),
        stopped: Cell::new(false),
    };
    let mut out = Vec::new();
    validator.value(node, root_schema, &KeyPath::default(), &mut out);
    (!validator.stopped.get()).then_some(out)
}

/// How many values are validated between two questions to `cancelled`.
const CANCEL_CHECK_INTERVAL: usize = 512;

struct Validator<'s, 'c> {
    /// Reads the schema (`$ref`s, combinators).
    nav: SchemaNav<'s>,
    cancelled: &'c dyn Fn() -> bool,
    visited: Cell<usize>,
    stopped: Cell<bool>,
}

impl<'s> Validator<'s, '_> {
    /// Whether to stop: asks `cancelled` once every [`CANCEL_CHECK_INTERVAL`] calls.
    fn stop(&self) -> bool {
        if self.stopped.get() {
            return true;
        }
        let visited = self.visited.get() + 1;
        self.visited.set(visited);
        if visited.is_multiple_of(CANCEL_CHECK_INTERVAL) && (self.cancelled)() {
            self.stopped.set(true);
        }
        self.stopped.get()
    }

    /// Follows `$ref` chains to the schema that says something.
    fn resolve(&self, schema: &'s Value) -> &'s Value {
        self.nav.resolve(schema)
    }

    fn value(&self, node: &Node, schema: &'s Value, path: &KeyPath, out: &mut Vec<RawDiagnostic>) {
        if self.stop() {
            return;
        }
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                out.push(RawDiagnostic::error(
                    path,
                    node.span.clone(),
                    format!("`{path}` is not allowed here"),
                ));
            }
            return;
        };

        if let Some(all_of) = keywords.get("allOf").and_then(Value::as_array) {
            for part in all_of {
                self.value(node, part, path, out);
            }
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(branches) = keywords.get(combinator).and_then(Value::as_array) {
                self.branches(node, branches, path, out);
            }
        }

        if let Some(expected) = keywords.get("type")
            && !type_matches(node, expected)
        {
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "wrong type for {}: expected {}, found {}",
                    describe(path),
                    type_list(expected),
                    node.type_name()
                ),
            ));
            return;
        }
        if let Some(constant) = keywords.get("const")
            && &node.to_json() != constant
        {
            self.bad_value(node, std::slice::from_ref(constant), path, out);
            return;
        }
        if let Some(allowed) = keywords.get("enum").and_then(Value::as_array)
            && !allowed.contains(&node.to_json())
        {
            self.bad_value(node, allowed, path, out);
            return;
        }
        if let Some(not) = keywords.get("not") {
            self.not(node, not, path, out);
        }

        match &node.kind {
            NodeKind::Object(_) => self.object(node, keywords, path, out),
            NodeKind::Array(items) => self.array(node, items, keywords, path, out),
            NodeKind::String(text) => self.string(node, text, keywords, path, out),
            NodeKind::Number(number) => self.number(node, number, keywords, path, out),
            NodeKind::Null | NodeKind::Bool(_) => {}
        }
    }

    /// `anyOf`/`oneOf`: passes when a branch passes; otherwise reports the errors of the branch
    /// the user most likely meant.
    fn branches(
        &self,
        node: &Node,
        branches: &'s [Value],
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        let mut attempts = Vec::new();
        for branch in branches {
            let mut errors = Vec::new();
            self.value(node, branch, path, &mut errors);
            if !errors.iter().any(|d| d.severity == crate::Severity::Error) {
                out.extend(errors);
                return;
            }
            attempts.push((branch, errors));
        }
        let node_type = node.type_name();
        let matching: Vec<_> = attempts
            .iter()
            .filter(|(branch, _)| {
                self.accepted_types(branch)
                    .iter()
                    .any(|t| type_name_matches(node, t))
            })
            .collect();
        if matching.is_empty() {
            let mut expected = BTreeSet::new();
            for branch in branches {
                expected.extend(self.accepted_types(branch));
            }
            let expected: Vec<_> = expected.into_iter().collect();
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "wrong type for {}: expected {}, found {node_type}",
                    describe(path),
                    join_or(&expected)
                ),
            ));
            return;
        }
        // A string that matches no constant of a set of string choices: list them all.
        let constants: Vec<Value> = matching
            .iter()
            .flat_map(|(branch, _)| self.constants(branch))
            .collect();
        if matches!(node.kind, NodeKind::String(_))
            && !constants.is_empty()
            && matching
                .iter()
                .all(|(branch, _)| !self.constants(branch).is_empty())
        {
            self.bad_value(node, &constants, path, out);
            return;
        }
        let (_, errors) = matching
            .iter()
            .min_by_key(|(_, errors)| {
                errors
                    .iter()
                    .filter(|d| d.severity == crate::Severity::Error)
                    .count()
            })
            .expect("matching is not empty");
        out.extend(errors.iter().cloned());
    }

    /// The JSON types a schema can accept (for choosing among `anyOf` branches).
    fn accepted_types(&self, schema: &'s Value) -> BTreeSet<&'static str> {
        let schema = self.resolve(schema);
        let mut types = BTreeSet::new();
        let Some(keywords) = schema.as_object() else {
            if schema == &Value::Bool(true) {
                types.extend(ALL_TYPES);
            }
            return types;
        };
        if let Some(expected) = keywords.get("type") {
            for name in type_names(expected) {
                if let Some(known) = ALL_TYPES.iter().find(|known| **known == name) {
                    types.insert(*known);
                }
            }
            return types;
        }
        if let Some(constant) = keywords.get("const") {
            types.insert(json_type(constant));
            return types;
        }
        let mut found_combinator = false;
        for combinator in ["anyOf", "oneOf", "allOf"] {
            if let Some(branches) = keywords.get(combinator).and_then(Value::as_array) {
                found_combinator = true;
                for branch in branches {
                    types.extend(self.accepted_types(branch));
                }
            }
        }
        if !found_combinator {
            types.extend(ALL_TYPES);
        }
        types
    }

    /// The constant values a schema is made of (`const`, `enum`, or branches of those).
    fn constants(&self, schema: &'s Value) -> Vec<Value> {
        let schema = self.resolve(schema);
        if let Some(constant) = schema.get("const") {
            return vec![constant.clone()];
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values.clone();
        }
        let mut constants = Vec::new();
        for combinator in ["anyOf", "oneOf", "allOf"] {
            if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
                for branch in branches {
                    let more = self.constants(branch);
                    if more.is_empty() {
                        return Vec::new();
                    }
                    constants.extend(more);
                }
            }
        }
        constants
    }

    fn bad_value(
        &self,
        node: &Node,
        allowed: &[Value],
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        let shown: Vec<String> = allowed
            .iter()
            .map(|value| format!("`{}`", display_value(value)))
            .collect();
        let mut message = format!(
            "invalid value `{}` for {}: expected {}",
            display_value(&node.to_json()),
            describe(path),
            if shown.len() == 1 {
                shown[0].clone()
            } else {
                format!("one of {}", shown.join(", "))
            }
        );
        let mut replacement = None;
        if let NodeKind::String(text) = &node.kind {
            let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            if let Some(suggestion) = suggest::closest(text, names.iter().copied()) {
                message.push_str(&format!("; did you mean `{suggestion}`?"));
                replacement = Some(quote_like(node, suggestion));
            }
        }
        out.push(
            RawDiagnostic::error(path, node.span.clone(), message).with_replacement(replacement),
        );
    }

    fn not(&self, node: &Node, not: &'s Value, path: &KeyPath, out: &mut Vec<RawDiagnostic>) {
        let mut errors = Vec::new();
        self.value(node, not, path, &mut errors);
        if !errors.is_empty() {
            return;
        }
        let message = not
            .get("x-mirrord-message")
            .and_then(Value::as_str)
            .map_or_else(
                || format!("{} matches a form that is not allowed", describe(path)),
                str::to_owned,
            );
        // Point at the last of the keys that may not appear together.
        let span = not
            .get("required")
            .and_then(Value::as_array)
            .and_then(|keys| keys.last())
            .and_then(Value::as_str)
            .and_then(|key| node.get(key))
            .map_or_else(|| node.span.clone(), |entry| entry.key_span.clone());
        out.push(RawDiagnostic::error(path, span, message));
    }

    fn object(
        &self,
        node: &Node,
        keywords: &'s Map<String, Value>,
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        let NodeKind::Object(entries) = &node.kind else {
            return;
        };
        let properties = keywords.get("properties").and_then(Value::as_object);
        let additional = keywords.get("additionalProperties");
        for entry in entries {
            let entry_path = path.key(&entry.key);
            if let Some(names) = keywords.get("propertyNames") {
                let key_node = Node {
                    kind: NodeKind::String(entry.key.clone()),
                    span: entry.key_span.clone(),
                };
                self.value(&key_node, names, &entry_path, out);
            }
            if let Some(property) = properties.and_then(|properties| properties.get(&entry.key)) {
                self.property_notes(entry, property, &entry_path, out);
                self.value(&entry.value, property, &entry_path, out);
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => {
                    out.push(self.unknown_key(entry, properties, path, &entry_path))
                }
                Some(schema) => self.value(&entry.value, schema, &entry_path, out),
                None => {}
            }
        }
        if let Some(required) = keywords.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if node.get(key).is_none() {
                    out.push(RawDiagnostic::error(
                        path,
                        node.span.start..node.span.start + 1,
                        format!("missing required key `{key}` in {}", describe(path)),
                    ));
                }
            }
        }
    }

    /// Warnings attached to a key itself: deprecated spellings and keys we do not implement.
    fn property_notes(
        &self,
        entry: &crate::source::Entry,
        property: &'s Value,
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        if property.get("deprecated") == Some(&Value::Bool(true)) {
            let message = property
                .get("deprecationMessage")
                .and_then(Value::as_str)
                .map_or_else(|| format!("`{path}` is deprecated"), str::to_owned);
            let replacement = property
                .get("x-mirrord-replaced-by")
                .and_then(Value::as_str)
                .map(str::to_owned);
            out.push(
                RawDiagnostic::warning(path, entry.key_span.clone(), message)
                    .with_replacement(replacement),
            );
        }
        if self.nav.is_unsupported(property) {
            out.push(RawDiagnostic::warning(
                path,
                entry.key_span.clone(),
                format!("`{path}` is a mirrord feature that this implementation does not support; it is ignored"),
            ));
        }
    }

    fn unknown_key(
        &self,
        entry: &crate::source::Entry,
        properties: Option<&Map<String, Value>>,
        parent: &KeyPath,
        path: &KeyPath,
    ) -> RawDiagnostic {
        let known: Vec<&str> = properties
            .map(|p| {
                p.keys()
                    .map(String::as_str)
                    .filter(|k| *k != "$schema")
                    .collect()
            })
            .unwrap_or_default();
        let place = if parent.segments().is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in `{parent}`")
        };
        let suggestion = suggest::closest(&entry.key, known.iter().copied());
        let message = match suggestion {
            Some(suggestion) => format!(
                "unknown key `{}` {place}; did you mean `{suggestion}`?",
                entry.key
            ),
            None if known.is_empty() => format!("unknown key `{}` {place}", entry.key),
            None => format!(
                "unknown key `{}` {place}; expected one of: {}",
                entry.key,
                known.join(", ")
            ),
        };
        let replacement =
            suggestion.map(|suggestion| quote_key_like(&entry.key_span, &entry.key, suggestion));
        RawDiagnostic::error(path, entry.key_span.clone(), message).with_replacement(replacement)
    }

    fn array(
        &self,
        node: &Node,
        items: &[Node],
        keywords: &'s Map<String, Value>,
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        if let Some(min) = keywords.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "{} must have at least {min} item{}, found {}",
                    describe(path),
                    plural(min),
                    items.len()
                ),
            ));
        }
        if let Some(max) = keywords.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "{} must have at most {max} item{}, found {}",
                    describe(path),
                    plural(max),
                    items.len()
                ),
            ));
        }
        match keywords.get("items") {
            Some(Value::Array(tuple)) => {
                for (index, (item, schema)) in items.iter().zip(tuple).enumerate() {
                    self.value(item, schema, &path.index(index), out);
                }
            }
            Some(schema) => {
                for (index, item) in items.iter().enumerate() {
                    self.value(item, schema, &path.index(index), out);
                }
            }
            None => {}
        }
    }

    fn string(
        &self,
        node: &Node,
        text: &str,
        keywords: &'s Map<String, Value>,
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        if let Some(pattern) = keywords.get("pattern").and_then(Value::as_str) {
            let matches = schema_pattern(pattern).is_none_or(|regex| regex.is_match(text));
            if !matches {
                let message = match keywords.get("patternErrorMessage").and_then(Value::as_str) {
                    Some(help) => format!("{help}, found `{text}`"),
                    None => format!("{} does not match the pattern `{pattern}`", describe(path)),
                };
                out.push(RawDiagnostic::error(path, node.span.clone(), message));
            }
        }
        if keywords.get("format").and_then(Value::as_str) == Some("regex")
            && let Some(problem) = regex_problem(text)
        {
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "invalid regular expression in {}: {problem}",
                    describe(path)
                ),
            ));
        }
    }

    fn number(
        &self,
        node: &Node,
        number: &serde_json::Number,
        keywords: &'s Map<String, Value>,
        path: &KeyPath,
        out: &mut Vec<RawDiagnostic>,
    ) {
        let value = number.as_f64().unwrap_or(0.0);
        if let Some(minimum) = keywords.get("minimum").and_then(Value::as_f64)
            && value < minimum
        {
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "{} must be at least {}, found {number}",
                    describe(path),
                    display_number(minimum)
                ),
            ));
        }
        if let Some(maximum) = keywords.get("maximum").and_then(Value::as_f64)
            && value > maximum
        {
            out.push(RawDiagnostic::error(
                path,
                node.span.clone(),
                format!(
                    "{} must be at most {}, found {number}",
                    describe(path),
                    display_number(maximum)
                ),
            ));
        }
    }
}

const ALL_TYPES: [&str; 7] = [
    "array", "boolean", "integer", "null", "number", "object", "string",
];

fn type_names(expected: &Value) -> Vec<&str> {
    match expected {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_list(expected: &Value) -> String {
    join_or(&type_names(expected))
}

fn type_matches(node: &Node, expected: &Value) -> bool {
    type_names(expected)
        .iter()
        .any(|name| type_name_matches(node, name))
}

fn type_name_matches(node: &Node, name: &str) -> bool {
    match (&node.kind, name) {
        (NodeKind::Null, "null")
        | (NodeKind::Bool(_), "boolean")
        | (NodeKind::String(_), "string")
        | (NodeKind::Array(_), "array")
        | (NodeKind::Object(_), "object")
        | (NodeKind::Number(_), "number") => true,
        (NodeKind::Number(number), "integer") => {
            !number.is_f64() || number.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn join_or(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// "`feature.fs.mode`", or "the document" for the root.
fn describe(path: &KeyPath) -> String {
    if path.segments().is_empty() {
        "the document".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn display_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// The suggested value written the way the original was (quoted in JSON, bare in YAML/TOML keys
/// where it was bare).
fn quote_like(node: &Node, suggestion: &str) -> String {
    let original_length = node.span.end - node.span.start;
    let NodeKind::String(text) = &node.kind else {
        return suggestion.to_owned();
    };
    if original_length >= text.len() + 2 {
        format!("\"{suggestion}\"")
    } else {
        suggestion.to_owned()
    }
}

fn quote_key_like(span: &Span, key: &str, suggestion: &str) -> String {
    if span.end - span.start >= key.len() + 2 {
        format!("\"{suggestion}\"")
    } else {
        suggestion.to_owned()
    }
}

/// The schema's `pattern`s, compiled once per process (there are a handful; an invalid one, which
/// the schema tests rule out, matches everything).
fn schema_pattern(pattern: &str) -> Option<regex::Regex> {
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    COMPILED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(pattern.to_owned())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

/// Why `text` is not a valid regex, if it is not. Remembered per process, because an editor
/// checks the same file's unchanged regexes again on every keystroke and compiling them is most of
/// a check's cost; bounded, so a long-running sidecar's memory stays flat.
fn regex_problem(text: &str) -> Option<String> {
    const REMEMBERED: usize = 4096;
    static CHECKED: LazyLock<Mutex<HashMap<String, Option<String>>>> =
        LazyLock::new(Mutex::default);
    if let Some(known) = CHECKED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(text)
    {
        return known.clone();
    }
    let problem = regex::Regex::new(text)
        .err()
        .map(|error| regex_error_summary(&error));
    let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    if checked.len() >= REMEMBERED {
        checked.clear();
    }
    checked.insert(text.to_owned(), problem.clone());
    problem
}

/// The one line of a `regex` error that says what is wrong.
pub(crate) fn regex_error_summary(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map_or_else(
            || text.lines().last().unwrap_or("invalid").trim().to_owned(),
            str::to_owned,
        )
}
