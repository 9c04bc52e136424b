//! Every RPC of the real server, fuzzed with arbitrary protobuf messages
//! built from the very descriptors it serves for reflection: every field
//! of every request, nested messages, repeated and map fields, random
//! enum numbers and oneof choices, and strings that are empty, huge, full
//! of control or bidirectional control characters, or the ids that exist.
//! Each call is answered (never a hang: each is guarded), never with
//! INTERNAL or UNKNOWN, every INVALID_ARGUMENT names a field of the
//! request, and a refused write leaves the revision where it was. Bodies
//! that are not protobuf at all are INVALID_ARGUMENT for every RPC. The
//! same messages, written as JSON, go through the HTTP/JSON edge too: the
//! same judgement, and each code under its HTTP status.
//!
//! `AUTHZD_FUZZ_CASES` sets the number of cases (CI's fuzz step runs many
//! more than `cargo test`).

use authzd_testkit as common;

use std::collections::HashMap;

use authzd_testkit::dataset::Rng;
use authzd_testkit::http::Raw;
use common::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, MethodDescriptor, Value,
};
use tonic::Code;
use tonic::transport::Channel;

/// Every authzd method, from the descriptors the server serves.
fn methods() -> Vec<MethodDescriptor> {
    let pool = DescriptorPool::decode(authzd_server::api::pb::FILE_DESCRIPTOR_SET).unwrap();
    let methods: Vec<_> = pool
        .services()
        .filter(|s| s.package_name() == "authzd.v1")
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect();
    assert!(methods.len() > 30, "{} methods", methods.len());
    methods
}

fn path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// Whether a method writes (a refusal must leave the revision alone).
fn writes(method: &MethodDescriptor) -> bool {
    ["Create", "Update", "Delete", "Manage", "Write"]
        .iter()
        .any(|p| method.name().starts_with(p))
}

/// Sends `body` to `method`: the status, or OK.
async fn send(channel: &Channel, method: &MethodDescriptor, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    guard("the server to be ready", grpc.ready()).await.unwrap();
    let route = path(method).parse().unwrap();
    let request = tonic::Request::new(body);
    let answered = if method.is_server_streaming() {
        // The stream's opening says whether the request was taken; a
        // taken Watch would run for ever, so it is not read.
        guard(&path(method), grpc.server_streaming(request, route, Raw))
            .await
            .map(|_| ())
    } else {
        guard(&path(method), grpc.unary(request, route, Raw))
            .await
            .map(|_| ())
    };
    answered.err().unwrap_or_else(|| tonic::Status::ok(""))
}

/// The revision the server has reached.
async fn revision(server: &TestServer) -> u64 {
    server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Ids and names that exist on the fuzzed server, so that generated
/// requests also reach past the first check.
const KNOWN: [&str; 10] = [
    ACME,
    "alice",
    "g",
    "eu",
    "root",
    "editor",
    "viewer",
    "document:read",
    "document:edit",
    "*",
];

/// Characters that make trouble: controls, bidirectional controls,
/// separators, quotes, non-BMP.
const NASTY: [char; 14] = [
    '\0',
    '\n',
    '\t',
    '\u{1b}',
    '\u{7f}',
    '\u{202E}',
    '\u{2066}',
    '\u{2069}',
    '\u{200B}',
    ' ',
    ':',
    '"',
    '\u{1F600}',
    '\u{FEFF}',
];

fn string(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => String::new(),
        1..=4 => KNOWN[rng.below(KNOWN.len())].to_string(),
        5 => {
            // A known id with a nasty character inside.
            let mut s = KNOWN[rng.below(KNOWN.len())].to_string();
            let at = (0..=s.len())
                .filter(|&i| s.is_char_boundary(i))
                .nth(rng.below(s.len() + 1));
            s.insert(at.unwrap_or(0), NASTY[rng.below(NASTY.len())]);
            s
        }
        6 => {
            // Huge: past every id and text limit, sometimes far past.
            let n = [257, 1025, 70_000, 600_000][rng.below(4)];
            "x".repeat(n)
        }
        _ => (0..rng.below(24))
            .map(|_| {
                if rng.one_in(4) {
                    NASTY[rng.below(NASTY.len())]
                } else {
                    char::from(b'a' + u8::try_from(rng.below(26)).unwrap())
                }
            })
            .collect(),
    }
}

fn number(rng: &mut Rng) -> i64 {
    match rng.below(6) {
        0 => 0,
        1 => -1,
        2 => i64::MAX,
        3 => i64::MIN,
        4 => i64::from(i32::MAX),
        _ => i64::try_from(rng.below(2000)).unwrap(),
    }
}

/// A value for field `name`: mostly a workable tenant and revision, so
/// that requests get past their first field; anything for the rest.
fn value(rng: &mut Rng, name: &str, kind: &Kind, depth: usize) -> Value {
    let workable = !rng.one_in(4);
    match kind {
        Kind::String if name == "tenant" && workable => Value::String(ACME.into()),
        Kind::Uint64 if name.contains("revision") && workable => Value::U64(0),
        Kind::String => Value::String(string(rng)),
        Kind::Bytes => Value::Bytes(string(rng).into_bytes().into()),
        Kind::Bool => Value::Bool(rng.one_in(2)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(number(rng) as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(number(rng)),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(number(rng) as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(number(rng) as u64),
        Kind::Float => Value::F32(number(rng) as f32),
        Kind::Double => Value::F64(number(rng) as f64),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            if rng.one_in(4) {
                Value::EnumNumber(number(rng) as i32)
            } else {
                Value::EnumNumber(known[rng.below(known.len())])
            }
        }
        Kind::Message(m) => Value::Message(message(rng, m, depth + 1)),
    }
}

/// A message with random fields: each field set or left default, one
/// member of each oneof (or none), lists and maps of a few entries.
fn message(rng: &mut Rng, desc: &MessageDescriptor, depth: usize) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    // Deep nesting only multiplies the same checks; three levels reach
    // every field of every request.
    if depth > 3 {
        return m;
    }
    for oneof in desc.oneofs() {
        let members: Vec<_> = oneof.fields().collect();
        if let Some(f) = members.get(rng.below(members.len() + 1)) {
            let v = value(rng, f.name(), &f.kind(), depth);
            m.set_field(f, v);
        }
    }
    for f in desc.fields().filter(|f| f.containing_oneof().is_none()) {
        if rng.one_in(3) {
            continue;
        }
        let v = if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                unreachable!()
            };
            let (kf, vf) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            let mut map = HashMap::new();
            for _ in 0..rng.below(4) {
                let key = match value(rng, kf.name(), &kf.kind(), depth) {
                    Value::String(s) => MapKey::String(s),
                    other => MapKey::String(format!("{other:?}")),
                };
                map.insert(key, value(rng, vf.name(), &vf.kind(), depth));
            }
            Value::Map(map)
        } else if f.is_list() {
            let n = if rng.one_in(16) { 1200 } else { rng.below(4) };
            Value::List(
                (0..n)
                    .map(|_| value(rng, f.name(), &f.kind(), depth))
                    .collect(),
            )
        } else {
            value(rng, f.name(), &f.kind(), depth)
        };
        m.set_field(&f, v);
    }
    m
}

/// Checks one answer; returns what is wrong with it, if anything.
fn judge(method: &MethodDescriptor, status: &tonic::Status) -> Result<(), String> {
    match status.code() {
        Code::Ok
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::OutOfRange
        | Code::ResourceExhausted
        | Code::Aborted => Ok(()),
        Code::InvalidArgument => {
            // `field.path[2].leaf: reason`, or (a schema's diagnostics)
            // lines of `field:line: ...` after a summary.
            let message = status.message();
            let input = method.input();
            let names_a_field = message.lines().any(|line| {
                let field = line.split(':').next().unwrap_or_default();
                let first = field.split(['.', '[']).next().unwrap_or_default();
                first == "request" || input.get_field_by_name(first).is_some()
            });
            if names_a_field {
                Ok(())
            } else {
                Err(format!("INVALID_ARGUMENT naming no field: {message}"))
            }
        }
        _ => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Arbitrary messages to every RPC: answered, never INTERNAL, refusals
/// name a field, refused writes change nothing.
#[test]
fn arbitrary_messages_to_every_rpc() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(seeded_server());
    let channel = runtime.block_on(server.channel());
    let methods = methods();
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases(48),
        failure_persistence: None,
        ..Config::default()
    });
    let cases = (0..methods.len(), proptest::num::u64::ANY);
    let outcome = runner.run(&cases, |(m, seed)| {
        let method = &methods[m];
        let mut rng = Rng::new(seed);
        let body = message(&mut rng, &method.input(), 0).encode_to_vec();
        runtime.block_on(async {
            let before = revision(&server).await;
            let status = send(&channel, method, body).await;
            if let Err(e) = judge(method, &status) {
                return Err(proptest::test_runner::TestCaseError::fail(format!(
                    "{}: {e}",
                    path(method)
                )));
            }
            if writes(method) && status.code() != Code::Ok {
                let after = revision(&server).await;
                proptest::prop_assert_eq!(before, after, "{} refused but wrote", path(method));
            }
            Ok(())
        })
    });
    runtime.block_on(server.stop());
    outcome.unwrap();
}

/// The same arbitrary messages as JSON, to every RPC through the HTTP/JSON
/// edge: judged as over gRPC, each answered under its code's HTTP status,
/// every reply JSON.
#[test]
fn arbitrary_json_to_every_rpc() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(seeded_server());
    let methods = methods();
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases(32),
        failure_persistence: None,
        ..Config::default()
    });
    let cases = (0..methods.len(), proptest::num::u64::ANY);
    let outcome = runner.run(&cases, |(m, seed)| {
        let method = &methods[m];
        let mut rng = Rng::new(seed);
        let message = message(&mut rng, &method.input(), 0);
        // A message JSON cannot spell (a timestamp out of its range), or
        // one past the body limit (answered before it is read, tested in
        // the API tests), is not a case of this target.
        let Ok(json) = serde_json::to_string(&message) else {
            return Ok(());
        };
        if json.len() > authzd_server::http::bridge::MAX_JSON_BYTES {
            return Ok(());
        }
        runtime.block_on(async {
            let before = revision(&server).await;
            let (status, code, text) = if method.is_server_streaming() {
                // A taken stream would run for ever: its opening is judged.
                let (status, mut lines) =
                    authzd_testkit::http::Lines::open(server.http, &path(method), "", &json).await;
                if status == 200 {
                    (status, Code::Ok, String::new())
                } else {
                    let error = lines.next().await.unwrap();
                    let code = authzd_testkit::http::code_named(error["code"].as_str().unwrap());
                    (status, code, error["message"].as_str().unwrap().to_owned())
                }
            } else {
                let reply = authzd_testkit::http::post(server.http, &path(method), "", &json).await;
                let json = reply.json();
                let code = json["code"]
                    .as_str()
                    .map_or(Code::Ok, authzd_testkit::http::code_named);
                let text = json["message"].as_str().unwrap_or_default().to_owned();
                (reply.status, code, text)
            };
            let expected = authzd_server::http::status::http_status(code).as_u16();
            proptest::prop_assert_eq!(status, expected, "{} {:?}", path(method), code);
            // A JSON body the edge refuses names what is wrong with it.
            let refused_body = text.starts_with("request body: ");
            if !refused_body {
                if let Err(e) = judge(method, &tonic::Status::new(code, text)) {
                    return Err(proptest::test_runner::TestCaseError::fail(format!(
                        "{}: {e}",
                        path(method)
                    )));
                }
            }
            if writes(method) && code != Code::Ok {
                let after = revision(&server).await;
                proptest::prop_assert_eq!(before, after, "{} refused but wrote", path(method));
            }
            Ok(())
        })
    });
    runtime.block_on(server.stop());
    outcome.unwrap();
}

/// Bodies that are not protobuf (a length past the end, a reserved wire
/// type, a string field that is not UTF-8) are INVALID_ARGUMENT for every
/// RPC, saying so, and write nothing.
#[tokio::test]
async fn bodies_that_are_not_protobuf_are_invalid_argument() {
    let server = seeded_server().await;
    let channel = server.channel().await;
    let before = revision(&server).await;
    for method in methods() {
        let mut garbage: Vec<Vec<u8>> = vec![
            vec![0x0a, 0x7f, b'a'],
            vec![0x0f, 0x00],
            vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ];
        // Not UTF-8, in the request's first string field (if it has one:
        // elsewhere such bytes would be a well-formed unknown field).
        if let Some(f) = method
            .input()
            .fields()
            .find(|f| matches!(f.kind(), Kind::String) && f.number() < 16)
        {
            let tag = u8::try_from(f.number() << 3 | 2).unwrap();
            garbage.push(vec![tag, 0x02, 0xff, 0xfe]);
        }
        for body in garbage {
            let status = send(&channel, &method, body.clone()).await;
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{} {body:?}: {status:?}",
                path(&method)
            );
            assert!(
                status.message().starts_with("request: not valid protobuf"),
                "{status:?}"
            );
        }
    }
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}
