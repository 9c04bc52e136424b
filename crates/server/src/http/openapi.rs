//! The OpenAPI 3.1 document of the HTTP/JSON API, made at start-up from
//! the same descriptor set the bridge decodes with, so it cannot drift
//! from the protos: one `POST` path per method, one schema per message in
//! its canonical JSON form, the descriptions from the proto comments.
//! Must not be written by hand.

use prost_reflect::{
    Cardinality, DescriptorPool, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
};
use serde_json::{Map, Value, json};

use super::bridge::NDJSON;

/// Where a schema is referred to.
fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The comment the source info holds for the element at `path` of `file`.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The OpenAPI document of every service in `pool` whose package starts
/// with one of `packages`.
pub fn document(pool: &DescriptorPool, packages: &[&str], version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut pending: Vec<MessageDescriptor> = Vec::new();
    for service in pool.services() {
        if !packages.contains(&service.package_name()) {
            continue;
        }
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let mut operation = Map::new();
            operation.insert(
                "operationId".into(),
                json!(format!("{}_{}", service.name(), method.name())),
            );
            operation.insert("tags".into(), json!([service.name()]));
            if let Some(text) = comment(&method.parent_file(), method.path()) {
                operation.insert("description".into(), json!(text));
            }
            if method.is_client_streaming() {
                operation.insert(
                    "summary".into(),
                    json!("Takes a stream of requests: answered 501 over HTTP/JSON; call it over gRPC."),
                );
            }
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": { "application/json": { "schema": reference(method.input().full_name()) } }
                }),
            );
            let (media, description) = if method.is_server_streaming() {
                (
                    NDJSON,
                    "One JSON object a line, each a reply message; a stream that ends with an error ends with a line {\"error\": Error}.",
                )
            } else {
                ("application/json", "The reply.")
            };
            operation.insert(
                "responses".into(),
                json!({
                    "200": {
                        "description": description,
                        "content": { media: { "schema": reference(method.output().full_name()) } }
                    },
                    "default": {
                        "description": "An error: its gRPC code's name, the message, and a refusal's reason code.",
                        "content": { "application/json": { "schema": reference("Error") } }
                    }
                }),
            );
            paths.insert(path, json!({ "post": operation }));
            pending.push(method.input());
            pending.push(method.output());
        }
    }
    while let Some(message) = pending.pop() {
        if schemas.contains_key(message.full_name()) || well_known(&message).is_some() {
            continue;
        }
        let mut properties = Map::new();
        for field in message.fields() {
            let mut schema = field_schema(&field, &mut pending);
            if let (Some(text), Value::Object(map)) =
                (comment(&message.parent_file(), field.path()), &mut schema)
            {
                map.insert("description".into(), json!(text));
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = Map::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Value::Object(properties));
        schema.insert("additionalProperties".into(), json!(false));
        if let Some(text) = comment(&message.parent_file(), message.path()) {
            schema.insert("description".into(), json!(text));
        }
        schemas.insert(message.full_name().to_owned(), Value::Object(schema));
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string", "description": "The gRPC code's name, e.g. INVALID_ARGUMENT." },
                "message": { "type": "string" },
                "reason": { "type": "string", "description": "A refusal's reason code, when a rule refused." },
                "metadata": { "type": "object", "additionalProperties": { "type": "string" } }
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "authzd HTTP/JSON API",
            "version": version,
            "description": "Every unary RPC of authzd's gRPC API as POST /<package>.<Service>/<Method>, with the canonical proto3 JSON mapping (lowerCamel names, 64-bit integers as strings, enums by name); server streams as newline-delimited JSON."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [ { "bearer": [] } ]
    })
}

/// The JSON schema of a well-known type, which proto3's JSON mapping
/// spells specially.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => {
            json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$" })
        }
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.BoolValue" => json!({ "type": "boolean" }),
        "google.protobuf.StringValue" => json!({ "type": "string" }),
        "google.protobuf.BytesValue" => json!({ "type": "string", "contentEncoding": "base64" }),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({ "type": "integer" })
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => json!({ "type": "string" }),
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({ "type": "number" }),
        _ => return None,
    })
}

/// The schema of one value of `kind`, queueing any message it names.
fn kind_schema(kind: &Kind, pending: &mut Vec<MessageDescriptor>) -> Value {
    match kind {
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32" })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int32", "minimum": 0 })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": "string", "format": "int64" })
        }
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            json!({ "type": "string", "enum": names })
        }
        Kind::Message(m) => {
            if let Some(schema) = well_known(m) {
                return schema;
            }
            pending.push(m.clone());
            reference(m.full_name())
        }
    }
}

/// The schema of `field`: a value, a list of them, or a map.
fn field_schema(field: &FieldDescriptor, pending: &mut Vec<MessageDescriptor>) -> Value {
    if field.is_map() {
        let value = match field.kind() {
            Kind::Message(entry) => entry.map_entry_value_field().kind(),
            other => other,
        };
        return json!({ "type": "object", "additionalProperties": kind_schema(&value, pending) });
    }
    let one = kind_schema(&field.kind(), pending);
    if field.cardinality() == Cardinality::Repeated {
        json!({ "type": "array", "items": one })
    } else {
        one
    }
}
