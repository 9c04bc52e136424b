//! The bridge from HTTP/JSON to the gRPC stack: a JSON request becomes the
//! method's protobuf message in a gRPC frame, is handed in-process to the
//! very service stack the gRPC listener serves (guard, write layer,
//! tonic's routes), and the reply's frames come back as JSON.
//!
//! Nothing of a call is decided here: who may call, what the request
//! means, limits, the audit trail, the access log, metrics and traces all
//! happen in the stack, as for a call over gRPC. This file knows only the
//! canonical proto3 JSON mapping (through the descriptor set, with
//! `prost-reflect`) and gRPC's framing. Must not convert to model types.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use serde_json::Value;
use tonic::Code;
use tonic::body::Body;

use super::status::{error_json, http_status};
use authzd_core::limits::MAX_MESSAGE_BYTES;

/// The largest JSON body taken: the protobuf limit's four times over, as
/// JSON spells names out and bytes in base64; what it decodes to is held
/// to [`MAX_MESSAGE_BYTES`] by the stack as over gRPC.
pub const MAX_JSON_BYTES: usize = MAX_MESSAGE_BYTES * 4;

/// The request headers handed on to the stack: the token, the request id,
/// a caller's trace context.
const CARRIED: [&str; 4] = ["authorization", "x-request-id", "traceparent", "tracestate"];

/// The response headers handed back: the request id and the revision a
/// write's reply reflects.
const RETURNED: [&str; 2] = ["x-request-id", super::super::api::REVISION_HEADER];

/// The media type of a server stream's reply: one JSON object a line.
pub const NDJSON: &str = "application/x-ndjson";

/// The gRPC service stack, behind one call: the same layers and routes the
/// gRPC listener serves.
#[derive(Clone)]
pub struct Stack(Arc<dyn Fn(Request<Body>) -> BoxFuture<'static, Response<Body>> + Send + Sync>);

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stack")
    }
}

impl Stack {
    /// Calls `service` (a clone of it per request, made ready first).
    pub fn new<S, B>(service: S) -> Stack
    where
        S: tower_service::Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Stack(Arc::new(move |request| {
            let mut service = service.clone();
            Box::pin(async move {
                let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
                let answered = match ready {
                    Ok(()) => service.call(request).await,
                    Err(never) => match never {},
                };
                match answered {
                    Ok(response) => response.map(Body::new),
                    Err(never) => match never {},
                }
            })
        }))
    }
}

/// The JSON edge of the stack: the descriptors that say what each method
/// takes and returns, and the stack that answers.
#[derive(Debug, Clone)]
pub struct Bridge {
    pool: DescriptorPool,
    stack: Stack,
}

/// A JSON reply: a status, headers and a body (a whole JSON value, or a
/// stream of lines).
pub type Reply = Response<axum::body::Body>;

impl Bridge {
    /// A bridge over `stack` for the methods `pool` describes.
    pub fn new(pool: DescriptorPool, stack: Stack) -> Bridge {
        Bridge { pool, stack }
    }

    /// The method a path (`/package.Service/Method`) names, if the
    /// descriptors know it.
    fn method(&self, path: &str) -> Option<MethodDescriptor> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        self.pool
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)
    }

    /// Answers one call: `body` is the JSON request of the method `path`
    /// names. A path the descriptors do not know is still handed to the
    /// stack (with an empty message), so that it is refused as over gRPC:
    /// without a token first, then as unimplemented.
    pub async fn call(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        let method = self.method(path);
        let message = match &method {
            Some(m) if m.is_client_streaming() => {
                return error(&tonic::Status::unimplemented(format!(
                    "{path} takes a stream of requests, which HTTP/JSON does not carry; call it over gRPC"
                )));
            }
            Some(m) => match decode(m.input(), body) {
                Ok(message) => message,
                Err(reason) => {
                    return error(&tonic::Status::invalid_argument(format!(
                        "request body: {reason}"
                    )));
                }
            },
            None => Vec::new(),
        };
        let response = (self.stack.0)(grpc_request(path, headers, message)).await;
        let (parts, body) = response.into_parts();
        let mut returned = HeaderMap::new();
        for name in RETURNED {
            if let Some(value) = parts.headers.get(name) {
                returned.insert(HeaderName::from_static(name), value.clone());
            }
        }
        // A trailers-only response: refused before any message (by the
        // guard, the codec, or an unknown method).
        if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
            let status = match status.code() {
                Code::Ok => None,
                // tonic's answer to a path it does not route says nothing.
                Code::Unimplemented if method.is_none() => {
                    Some(tonic::Status::unimplemented(format!("no method {path}")))
                }
                _ => Some(status),
            };
            if let Some(status) = status {
                return with_headers(error(&status), returned);
            }
        }
        let Some(method) = method else {
            return with_headers(
                error(&tonic::Status::unimplemented(format!("no method {path}"))),
                returned,
            );
        };
        let reply = if method.is_server_streaming() {
            stream(body, method.output())
        } else {
            unary(body, method.output()).await
        };
        with_headers(reply, returned)
    }
}

/// The protobuf encoding of `body`, the JSON of a `desc` (an empty body is
/// the empty message); the reason why not otherwise, naming an unknown
/// field.
fn decode(desc: MessageDescriptor, body: &[u8]) -> Result<Vec<u8>, String> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let message =
        DynamicMessage::deserialize_with_options(desc, &mut json, &DeserializeOptions::new())
            .map_err(|e| e.to_string())?;
    json.end().map_err(|e| e.to_string())?;
    Ok(message.encode_to_vec())
}

/// The JSON of one reply message: every field, defaults included (as
/// grpcurl prints them), 64-bit integers as strings, enums by name.
fn encode(desc: MessageDescriptor, bytes: &[u8]) -> Result<Value, tonic::Status> {
    let message = DynamicMessage::decode(desc, bytes).map_err(|e| {
        tracing::error!(error = %e, "a reply the descriptors do not decode");
        tonic::Status::internal("internal error")
    })?;
    let options = SerializeOptions::new().skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| {
            tracing::error!(error = %e, "a reply that does not serialize");
            tonic::Status::internal("internal error")
        })
}

/// The in-process gRPC request: `message` in one frame, with the headers
/// the stack reads carried over.
fn grpc_request(path: &str, headers: &HeaderMap, message: Vec<u8>) -> Request<Body> {
    let mut framed = Vec::with_capacity(message.len().saturating_add(5));
    framed.push(0);
    // A message over u32::MAX bytes cannot come from a body bounded by
    // MAX_JSON_BYTES; should it, its length saturates and the stack
    // refuses the frame.
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(&message);
    let mut request = Request::new(Body::new(http_body_util::Full::new(Bytes::from(framed))));
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
    let out = request.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    out.insert(header::TE, HeaderValue::from_static("trailers"));
    for name in CARRIED {
        if let Some(value) = headers.get(name) {
            out.insert(HeaderName::from_static(name), value.clone());
        }
    }
    request
}

/// Takes one whole gRPC frame off the front of `buffer`, if it holds one.
fn next_frame(buffer: &mut BytesMut) -> Option<Bytes> {
    let header = buffer.get(..5)?;
    let length = header
        .get(1..5)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)?;
    let length = usize::try_from(length).ok()?;
    if buffer.len() < length.saturating_add(5) {
        return None;
    }
    buffer.advance(5);
    Some(buffer.split_to(length).freeze())
}

/// A unary reply: the one message as JSON, or the error the trailers
/// carry.
async fn unary(body: Body, output: MessageDescriptor) -> Reply {
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(status) => return error(&status),
    };
    let status = collected
        .trailers()
        .and_then(tonic::Status::from_header_map);
    let mut buffer = BytesMut::from(collected.to_bytes());
    match status {
        Some(status) if status.code() != Code::Ok => error(&status),
        _ => match next_frame(&mut buffer).map(|frame| encode(output, &frame)) {
            Some(Ok(json)) => json_reply(StatusCode::OK, &json),
            Some(Err(status)) => error(&status),
            None => error(&tonic::Status::internal("the reply carried no message")),
        },
    }
}

/// A server stream's reply: one JSON object a line, each message as it
/// arrives; a stream that ends with an error ends with a line `{"error":
/// {code, message, reason}}`. Dropping the reply (the client went away)
/// drops the stream, which the stack logs as cancelled.
fn stream(body: Body, output: MessageDescriptor) -> Reply {
    struct Lines {
        body: Body,
        buffer: BytesMut,
        output: MessageDescriptor,
        done: bool,
    }
    let lines = Lines {
        body,
        buffer: BytesMut::new(),
        output,
        done: false,
    };
    let stream = futures_util::stream::unfold(lines, |mut lines| async move {
        loop {
            if let Some(frame) = next_frame(&mut lines.buffer) {
                let json = match encode(lines.output.clone(), &frame) {
                    Ok(json) => json,
                    Err(status) => {
                        lines.done = true;
                        serde_json::json!({ "error": error_json(&status) })
                    }
                };
                return Some((Ok::<_, Infallible>(line(&json)), lines));
            }
            if lines.done {
                return None;
            }
            let ended = match lines.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        lines.buffer.extend_from_slice(&data);
                        continue;
                    }
                    Err(frame) => frame
                        .into_trailers()
                        .ok()
                        .and_then(|t| tonic::Status::from_header_map(&t)),
                },
                Some(Err(status)) => Some(status),
                None => None,
            };
            lines.done = true;
            match ended {
                Some(status) if status.code() != Code::Ok => {
                    let json = serde_json::json!({ "error": error_json(&status) });
                    return Some((Ok(line(&json)), lines));
                }
                _ => return None,
            }
        }
    });
    let mut reply = Response::new(axum::body::Body::from_stream(stream));
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    reply
}

/// `json` and a newline.
fn line(json: &Value) -> Bytes {
    let mut text = json.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// A JSON reply with `status`.
pub fn json_reply(status: StatusCode, json: &Value) -> Reply {
    let mut reply = Response::new(axum::body::Body::from(json.to_string()));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

/// The JSON error of `status`, under the HTTP status its code maps to.
pub fn error(status: &tonic::Status) -> Reply {
    json_reply(http_status(status.code()), &error_json(status))
}

fn with_headers(mut reply: Reply, headers: HeaderMap) -> Reply {
    reply.headers_mut().extend(headers);
    reply
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "unit tests: a failed expectation is a failed test"
    )]
    use super::*;

    /// Frames are taken whole, in order, and only when complete.
    #[test]
    fn frames() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&[0, 0, 0, 0, 2, b'a']);
        assert!(next_frame(&mut buffer).is_none());
        buffer.extend_from_slice(&[b'b', 0, 0, 0, 0, 0]);
        assert_eq!(next_frame(&mut buffer).unwrap(), Bytes::from_static(b"ab"));
        assert_eq!(next_frame(&mut buffer).unwrap(), Bytes::new());
        assert!(next_frame(&mut buffer).is_none());
    }
}
