//! The custom protocol as data, for the editor plugins: a JSON Schema of every custom request's
//! parameters and result generated from the types of [`crate::protocol`] (with the method names
//! and the error codes), and the TypeScript the VS Code extension compiles against, generated
//! from that schema. `schema/ide-protocol.json` and `editors/vscode/src/protocol.ts` are these
//! outputs (a test fails when a committed copy is stale); the JetBrains core checks its Kotlin
//! types against the schema in its own tests. Nothing here is hand-copied into a plugin.

use std::fmt::Write as _;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::errors;
use crate::protocol::{
    ConfigInvalidData, CustomRequest, EndSession, InitializationOptions, ListTargets,
    PatchLaunchConfig, Schema, SessionEvent, SessionFailedData, TargetRequiredData, VerifyConfig,
};

/// Where the generated files live, relative to the repository root.
pub const SCHEMA_FILE: &str = "schema/ide-protocol.json";
/// The TypeScript generated from the schema, relative to the repository root.
pub const TYPESCRIPT_FILE: &str = "editors/vscode/src/protocol.ts";

/// LSP error codes the plugins branch on (besides the sidecar's own, [`errors::ALL`]).
const LSP_ERROR_CODES: &[(&str, i64)] = &[("RequestCancelled", -32800)];

/// The protocol schema: `requests` and `notifications` (method → params/result `$ref`s),
/// `errorCodes` (name → code), `errorData` (name → `$ref` of the error's `data`) and
/// `definitions`.
pub fn schema() -> Value {
    let mut generator = SchemaSettings::draft07().for_serialize().into_generator();
    let mut requests = Map::new();
    let mut request = |method: &str, params: Value, result: Value| {
        requests.insert(
            method.to_owned(),
            json!({ "params": params, "result": result }),
        );
    };
    // `mirrord/schema` takes no parameters and answers a JSON Schema.
    request(Schema::METHOD, Value::Null, json!({ "type": "object" }));
    request(
        ListTargets::METHOD,
        sub::<<ListTargets as CustomRequest>::Params>(&mut generator),
        sub::<<ListTargets as CustomRequest>::Result>(&mut generator),
    );
    request(
        VerifyConfig::METHOD,
        sub::<<VerifyConfig as CustomRequest>::Params>(&mut generator),
        sub::<<VerifyConfig as CustomRequest>::Result>(&mut generator),
    );
    request(
        PatchLaunchConfig::METHOD,
        sub::<<PatchLaunchConfig as CustomRequest>::Params>(&mut generator),
        sub::<<PatchLaunchConfig as CustomRequest>::Result>(&mut generator),
    );
    request(
        EndSession::METHOD,
        sub::<<EndSession as CustomRequest>::Params>(&mut generator),
        sub::<<EndSession as CustomRequest>::Result>(&mut generator),
    );
    let session_event =
        <SessionEvent as tower_lsp_server::ls_types::notification::Notification>::METHOD;
    let notifications = json!({
        session_event: { "params": sub::<<SessionEvent as tower_lsp_server::ls_types::notification::Notification>::Params>(&mut generator) },
    });
    let error_data = json!({
        errors::CONFIG_INVALID.name: sub::<ConfigInvalidData>(&mut generator),
        errors::TARGET_REQUIRED.name: sub::<TargetRequiredData>(&mut generator),
        errors::SESSION_FAILED.name: sub::<SessionFailedData>(&mut generator),
    });
    let initialization_options = sub::<InitializationOptions>(&mut generator);
    let mut error_codes = Map::new();
    for code in errors::ALL {
        error_codes.insert(code.name.to_owned(), json!(code.code));
    }
    for (name, code) in LSP_ERROR_CODES {
        error_codes.insert((*name).to_owned(), json!(code));
    }
    let mut definitions: Vec<(String, Value)> =
        generator.take_definitions(true).into_iter().collect();
    definitions.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "mirrord IDE sidecar protocol",
        "description": "Generated from crates/ide/src/protocol.rs; see docs/ide-protocol.md.",
        "version": env!("CARGO_PKG_VERSION"),
        "requests": requests,
        "notifications": notifications,
        "initializationOptions": initialization_options,
        "errorCodes": error_codes,
        "errorData": error_data,
        "definitions": definitions.into_iter().collect::<Map<_, _>>(),
    })
}

fn sub<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// The TypeScript module of the schema: `Methods`, `ErrorCodes` and one type per definition.
pub fn typescript(schema: &Value) -> String {
    let mut out = String::new();
    out.push_str(
        "// The sidecar's custom protocol: method names, error codes and types. GENERATED from\n\
         // crates/ide/src/protocol.rs (schema/ide-protocol.json) by\n\
         // `UPDATE_EXPECT=1 cargo test -p mirrord-ide --test generated_protocol`; do not edit.\n\n",
    );
    out.push_str("export const Methods = {\n");
    let mut methods: Vec<&String> = Vec::new();
    for section in ["requests", "notifications"] {
        if let Some(map) = schema[section].as_object() {
            methods.extend(map.keys());
        }
    }
    for method in methods {
        let name = method.rsplit('/').next().unwrap_or(method);
        let _ = writeln!(out, "  {name}: '{method}',");
    }
    out.push_str("} as const;\n\n");
    out.push_str("/** The stable JSON-RPC error codes of the custom requests. */\n");
    out.push_str("export const ErrorCodes = {\n");
    if let Some(codes) = schema["errorCodes"].as_object() {
        for (name, code) in codes {
            let _ = writeln!(out, "  {}: {code},", lower_first(name));
        }
    }
    out.push_str("} as const;\n");
    if let Some(definitions) = schema["definitions"].as_object() {
        for (name, definition) in definitions {
            out.push('\n');
            out.push_str(&doc_comment(definition, ""));
            match definition.get("properties").and_then(Value::as_object) {
                Some(properties) => {
                    let required: Vec<&str> = definition["required"]
                        .as_array()
                        .map(|list| list.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let _ = writeln!(out, "export interface {name} {{");
                    for (field, field_schema) in properties {
                        out.push_str(&doc_comment(field_schema, "  "));
                        let optional = if required.contains(&field.as_str()) {
                            ""
                        } else {
                            "?"
                        };
                        let _ = writeln!(out, "  {field}{optional}: {};", ts_type(field_schema));
                    }
                    out.push_str("}\n");
                }
                None => {
                    let _ = writeln!(out, "export type {name} = {};", ts_type(definition));
                }
            }
        }
    }
    out
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn doc_comment(schema: &Value, indent: &str) -> String {
    match schema.get("description").and_then(Value::as_str) {
        Some(text) => {
            let text = text.replace("*/", "*\\/").replace('\n', " ");
            format!("{indent}/** {text} */\n")
        }
        None => String::new(),
    }
}

/// The TypeScript type of a (sub)schema.
fn ts_type(schema: &Value) -> String {
    let Some(object) = schema.as_object() else {
        return "unknown".to_owned();
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(constant) = object.get("const") {
        return ts_literal(constant);
    }
    if let Some(values) = object.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(ts_literal)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some([single]) = object
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return ts_type(single);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(variants) = object.get(key).and_then(Value::as_array) {
            return variants.iter().map(ts_type).collect::<Vec<_>>().join(" | ");
        }
    }
    match object.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .map(|kind| {
                let mut single = object.clone();
                single.insert("type".to_owned(), kind.clone());
                ts_type(&Value::Object(single))
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Some(Value::String(kind)) => match kind.as_str() {
            "string" => "string".to_owned(),
            "integer" | "number" => "number".to_owned(),
            "boolean" => "boolean".to_owned(),
            "null" => "null".to_owned(),
            "array" => {
                let item = object.get("items").map_or("unknown".to_owned(), ts_type);
                if item.contains(' ') {
                    format!("({item})[]")
                } else {
                    format!("{item}[]")
                }
            }
            "object" => match object.get("additionalProperties") {
                Some(Value::Object(_)) => format!(
                    "Record<string, {}>",
                    ts_type(&object["additionalProperties"])
                ),
                _ => "Record<string, unknown>".to_owned(),
            },
            _ => "unknown".to_owned(),
        },
        _ => "unknown".to_owned(),
    }
}

fn ts_literal(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{}'", text.replace('\'', "\\'")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnostic_shape_matches_real_diagnostics() {
        let (_, diagnostics) =
            mirrord_config::check_str("{ \"tagret\": \"pid/1\" }", mirrord_config::Format::Json);
        assert!(!diagnostics.is_empty());
        for diagnostic in diagnostics {
            let value = serde_json::to_value(&diagnostic).unwrap();
            serde_json::from_value::<crate::protocol::ConfigDiagnostic>(value.clone())
                .unwrap_or_else(|error| panic!("{value}: {error}"));
        }
        for format in ["json", "toml", "yaml"] {
            let parsed: mirrord_config::Format = serde_json::from_value(json!(format)).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), json!(format));
        }
        let text = typescript(&schema());
        assert!(
            text.contains("export type Format = 'json' | 'toml' | 'yaml';"),
            "{text}"
        );
        assert!(text.contains("  severity: Severity;"), "{text}");
    }

    #[test]
    fn typescript_types_follow_the_schema() {
        let schema = json!({
            "definitions": {
                "A": { "type": "object", "description": "An A.", "required": ["x"], "properties": {
                    "x": { "type": "array", "items": { "$ref": "#/definitions/B" } },
                    "y": { "type": ["string", "null"] },
                    "z": { "anyOf": [{ "$ref": "#/definitions/B" }, { "type": "null" }] },
                    "w": { "type": "object", "additionalProperties": true },
                } },
                "B": { "type": "string", "enum": ["one", "two"] },
            }
        });
        let text = typescript(&schema);
        assert!(text.contains("/** An A. */\nexport interface A {\n  x: B[];\n  y?: string | null;\n  z?: B | null;\n  w?: Record<string, unknown>;\n}"), "{text}");
        assert!(text.contains("export type B = 'one' | 'two';"), "{text}");
    }
}
