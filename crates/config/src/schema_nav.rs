//! The one reader of the generated JSON Schema: `$ref` resolution, the alternatives a schema
//! stands for (`allOf`/`anyOf`/`oneOf`), which keys an object at a key path accepts, their
//! descriptions, types, defaults and allowed values. The validator (`validate.rs`) and the IDE
//! sidecar's completion and hover both read the schema through it, so they cannot disagree.

use serde_json::Value;

use crate::diagnostic::PathSegment;

/// A view of the schema.
#[derive(Debug, Clone, Copy)]
pub struct SchemaNav<'s> {
    root: &'s Value,
}

/// A key an object accepts.
#[derive(Debug, Clone)]
pub struct KeyInfo<'s> {
    /// The key.
    pub name: &'s str,
    /// The key's own schema (description, deprecation) as written in `properties`.
    pub schema: &'s Value,
}

/// A value a key accepts exactly (`const`/`enum`, or `true`/`false`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueChoice {
    /// The value.
    pub value: Value,
    /// What it means, when the schema says.
    pub description: Option<String>,
}

impl<'s> SchemaNav<'s> {
    /// A view of `root`.
    pub fn new(root: &'s Value) -> SchemaNav<'s> {
        SchemaNav { root }
    }

    /// The schema of this binary's config format.
    pub fn mirrord() -> SchemaNav<'static> {
        SchemaNav::new(crate::schema::schema())
    }

    /// Follows `$ref` chains (at most 32 deep) to the schema that says something.
    pub fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut current = schema;
        for _ in 0..32 {
            let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
                return current;
            };
            match reference
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(pointer))
            {
                Some(target) => current = target,
                None => return current,
            }
        }
        current
    }

    /// The schemas `schema` stands for once `$ref`, `allOf`, `anyOf` and `oneOf` are expanded:
    /// each says something on its own (a type, a const, properties).
    pub fn alternatives(&self, schema: &'s Value) -> Vec<&'s Value> {
        let mut out = Vec::new();
        self.collect_alternatives(schema, &mut out, 0);
        out
    }

    fn collect_alternatives(&self, schema: &'s Value, out: &mut Vec<&'s Value>, depth: usize) {
        if depth > 32 {
            return;
        }
        let schema = self.resolve(schema);
        let mut combined = false;
        for combinator in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
                combined = true;
                for branch in branches {
                    self.collect_alternatives(branch, out, depth + 1);
                }
            }
        }
        let says_something = ["type", "const", "enum", "properties"]
            .iter()
            .any(|keyword| schema.get(keyword).is_some());
        if says_something || !combined {
            out.push(schema);
        }
    }

    /// The schemas of the value at `path` (every alternative that has such a key).
    pub fn at_path(&self, path: &[PathSegment]) -> Vec<&'s Value> {
        let mut current: Vec<&'s Value> = vec![self.root];
        for segment in path {
            let mut next = Vec::new();
            for schema in current.iter().flat_map(|schema| self.alternatives(schema)) {
                match segment {
                    PathSegment::Key(key) => {
                        if let Some(property) = schema
                            .get("properties")
                            .and_then(|properties| properties.get(key.as_str()))
                        {
                            next.push(property);
                        } else if let Some(additional) = schema
                            .get("additionalProperties")
                            .filter(|additional| additional.is_object())
                        {
                            next.push(additional);
                        }
                    }
                    PathSegment::Index(index) => match schema.get("items") {
                        Some(Value::Array(tuple)) => {
                            if let Some(item) = tuple.get(*index) {
                                next.push(item);
                            }
                        }
                        Some(items) => next.push(items),
                        None => {}
                    },
                }
            }
            if next.is_empty() {
                return next;
            }
            current = next;
        }
        current
    }

    /// The keys an object at `path` accepts, in schema order, without duplicates.
    pub fn keys_at(&self, path: &[PathSegment]) -> Vec<KeyInfo<'s>> {
        let mut keys: Vec<KeyInfo<'s>> = Vec::new();
        for schema in self
            .at_path(path)
            .iter()
            .flat_map(|schema| self.alternatives(schema))
        {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (name, property) in properties {
                if !keys.iter().any(|known| known.name == name) {
                    keys.push(KeyInfo {
                        name,
                        schema: property,
                    });
                }
            }
        }
        keys
    }

    /// The description of the key at the end of `path`: the key's own, else its type's.
    pub fn description_at(&self, path: &[PathSegment]) -> Option<String> {
        self.at_path(path)
            .into_iter()
            .find_map(|schema| self.description(schema))
    }

    /// The description of `schema` (its own, else the one of what it refers to).
    pub fn description(&self, schema: &'s Value) -> Option<String> {
        if let Some(text) = schema.get("description").and_then(Value::as_str) {
            return Some(text.to_owned());
        }
        self.alternatives(schema)
            .into_iter()
            .find_map(|alternative| alternative.get("description").and_then(Value::as_str))
            .map(str::to_owned)
    }

    /// The JSON types `schema` accepts, without `null`, in a stable order.
    pub fn types(&self, schema: &'s Value) -> Vec<&'static str> {
        const ORDER: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
        let mut found = Vec::new();
        for alternative in self.alternatives(schema) {
            if let Some(constant) = alternative.get("const") {
                found.push(json_type(constant));
            }
            if let Some(values) = alternative.get("enum").and_then(Value::as_array) {
                found.extend(values.iter().map(json_type));
            }
            match alternative.get("type") {
                Some(Value::String(name)) => found.extend(ORDER.iter().filter(|t| *t == name)),
                Some(Value::Array(names)) => {
                    for name in names.iter().filter_map(Value::as_str) {
                        found.extend(ORDER.iter().filter(|t| **t == name));
                    }
                }
                _ => {}
            }
            if alternative.get("type").is_none() && alternative.get("properties").is_some() {
                found.push("object");
            }
        }
        ORDER
            .iter()
            .copied()
            .filter(|name| found.contains(name))
            .collect()
    }

    /// The exact values `schema` accepts (`const`/`enum` branches, `true`/`false` for booleans).
    pub fn value_choices(&self, schema: &'s Value) -> Vec<ValueChoice> {
        let mut choices: Vec<ValueChoice> = Vec::new();
        let mut push = |value: Value, description: Option<String>| {
            if !choices.iter().any(|choice| choice.value == value) {
                choices.push(ValueChoice { value, description });
            }
        };
        for alternative in self.alternatives(schema) {
            let description = alternative
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(constant) = alternative.get("const") {
                push(constant.clone(), description.clone());
            }
            if let Some(values) = alternative.get("enum").and_then(Value::as_array) {
                for value in values.iter().filter(|value| !value.is_null()) {
                    push(value.clone(), None);
                }
            }
        }
        if self.types(schema).contains(&"boolean") {
            for value in [true, false] {
                push(Value::Bool(value), None);
            }
        }
        choices
    }

    /// Whether a key is a mirrord feature this implementation ignores: `x-mirrord-unsupported` on
    /// the key's schema, on what it refers to, or on any branch of its `allOf`/`anyOf`/`oneOf`.
    pub fn is_unsupported(&self, key_schema: &'s Value) -> bool {
        self.is_unsupported_within(key_schema, 0)
    }

    fn is_unsupported_within(&self, schema: &'s Value, depth: usize) -> bool {
        let marked =
            |schema: &Value| schema.get("x-mirrord-unsupported") == Some(&Value::Bool(true));
        if depth > 32 {
            return false;
        }
        let resolved = self.resolve(schema);
        if marked(schema) || marked(resolved) {
            return true;
        }
        ["allOf", "anyOf", "oneOf"].iter().any(|combinator| {
            resolved
                .get(combinator)
                .and_then(Value::as_array)
                .is_some_and(|branches| {
                    branches
                        .iter()
                        .any(|branch| self.is_unsupported_within(branch, depth + 1))
                })
        })
    }

    /// Example values the schema gives (`examples`), e.g. for target paths.
    pub fn examples(&self, schema: &'s Value) -> Vec<String> {
        self.alternatives(schema)
            .into_iter()
            .filter_map(|alternative| alternative.get("examples").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}

/// Whether a key is deprecated (`deprecated: true` or a `deprecationMessage`); like VS Code, such
/// keys are not offered by completion.
pub fn is_deprecated(key_schema: &Value) -> bool {
    key_schema.get("deprecated") == Some(&Value::Bool(true))
        || key_schema.get("deprecationMessage").is_some()
}

/// The default a description states ("Default: `60`." or "Default: none …"), as written.
pub fn default_from_description(description: &str) -> Option<String> {
    let start = description.find("Default: ")? + "Default: ".len();
    let rest = &description[start..];
    if let Some(code) = rest.strip_prefix('`') {
        let end = code.find('`')?;
        return Some(code[..end].to_owned());
    }
    let end = rest.find(['.', '\n', ';', '(']).unwrap_or(rest.len());
    let text = rest[..end].trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The JSON Schema type name of a value (`integer` for numbers without a fraction part).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PathSegment {
        PathSegment::Key(name.to_owned())
    }

    #[test]
    fn keys_follow_shorthand_forms() {
        let nav = SchemaNav::mirrord();
        let root: Vec<&str> = nav.keys_at(&[]).iter().map(|k| k.name).collect();
        assert!(root.contains(&"target") && root.contains(&"feature"));
        let incoming: Vec<&str> = nav
            .keys_at(&[key("feature"), key("network"), key("incoming")])
            .iter()
            .map(|k| k.name)
            .collect();
        assert!(incoming.contains(&"mode"), "{incoming:?}");
        assert!(incoming.contains(&"ignore_ports"), "{incoming:?}");
    }

    #[test]
    fn choices_list_modes_and_booleans() {
        let nav = SchemaNav::mirrord();
        let schemas = nav.at_path(&[key("feature"), key("network"), key("incoming")]);
        let values: Vec<Value> = schemas
            .iter()
            .flat_map(|schema| nav.value_choices(schema))
            .map(|choice| choice.value)
            .collect();
        for expected in ["mirror", "steal", "off"] {
            assert!(values.contains(&Value::from(expected)), "{values:?}");
        }
        assert!(values.contains(&Value::Bool(true)));
    }

    #[test]
    fn defaults_come_from_descriptions() {
        assert_eq!(
            default_from_description("Seconds.\n\nDefault: `60`.").as_deref(),
            Some("60")
        );
        assert_eq!(
            default_from_description("Default: none (the IDE asks).").as_deref(),
            Some("none")
        );
        assert_eq!(default_from_description("No default here."), None);
    }
}
