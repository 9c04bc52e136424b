//! A plain HTTP/1.1 client for the HTTP/JSON edge's tests: one connection
//! per request (hyper's), the reply's status, headers and JSON, and a
//! streamed reply read a line at a time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness: a failed request is a failed test"
)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpStream;

/// A whole reply.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The error's `code`, if the body is an error.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends a request and returns the reply's head and streaming body.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Response<Incoming> {
    try_send(addr, method, path, headers, body).await.unwrap()
}

/// [`send`], or the connection's error: a server that answers before
/// reading a body past its limit closes the connection, which a client
/// still writing sees as an error instead of the reply.
pub async fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<http::Response<Incoming>, hyper::Error> {
    let stream = crate::guard("the HTTP connection", TcpStream::connect(addr))
        .await
        .unwrap();
    try_send_over(stream, &addr.to_string(), method, path, headers, body).await
}

/// [`try_send`] over a connection the caller made (a TLS one, say) to
/// `host`.
pub async fn try_send_over<IO>(
    io: IO,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<http::Response<Incoming>, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    crate::guard(path, sender.send_request(request)).await
}

/// Sends a request and reads the whole reply.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let response = send(addr, method, path, headers, body).await;
    let (parts, body) = response.into_parts();
    let bytes = crate::guard("the reply body", body.collect())
        .await
        .unwrap()
        .to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// POSTs the JSON `body` to the RPC `path` (`/authzd.v1.X/Y`), presenting
/// `secret` as a bearer token unless it is empty.
pub async fn post(addr: SocketAddr, path: &str, secret: &str, body: &str) -> Reply {
    let authorization = format!("Bearer {secret}");
    let mut headers = vec![("content-type", "application/json")];
    if !secret.is_empty() {
        headers.push(("authorization", authorization.as_str()));
    }
    request(addr, "POST", path, &headers, body).await
}

/// A streamed reply, read one line of JSON at a time.
pub struct Lines {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Lines {
    /// Opens the server stream `path` with the JSON `body`; the status and
    /// the lines.
    pub async fn open(addr: SocketAddr, path: &str, secret: &str, body: &str) -> (u16, Lines) {
        let authorization = format!("Bearer {secret}");
        let mut headers = vec![("content-type", "application/json")];
        if !secret.is_empty() {
            headers.push(("authorization", authorization.as_str()));
        }
        let response = send(addr, "POST", path, &headers, body).await;
        let status = response.status().as_u16();
        (
            status,
            Lines {
                body: response.into_body(),
                buffer: Vec::new(),
            },
        )
    }

    /// The next line as JSON (or, for a refused stream, its one JSON
    /// error); `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let Some(frame) = crate::guard("a streamed line", self.body.frame()).await else {
                let rest: Vec<u8> = self.buffer.drain(..).collect();
                return (!rest.is_empty()).then(|| serde_json::from_slice(&rest).unwrap());
            };
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }
}

/// A codec that sends and receives message bodies as raw bytes, so a test
/// can send anything at all over gRPC.
#[derive(Debug, Clone, Default)]
pub struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// The method `path` (`/authzd.v1.X/Y`) names, from the descriptors the
/// HTTP edge serves.
pub fn method(path: &str) -> prost_reflect::MethodDescriptor {
    let pool = authzd_server::http::descriptors().unwrap();
    let (service, name) = path.trim_start_matches('/').split_once('/').unwrap();
    pool.get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == name))
        .unwrap_or_else(|| panic!("no method {path}"))
}

/// Makes the unary call `path` over gRPC with the request written as JSON
/// (transcoded here with the descriptors), presenting `secret` unless it
/// is empty: the reply as the same JSON the HTTP edge writes, or the
/// status. What a test compares the HTTP edge with.
pub async fn grpc_json(
    channel: tonic::transport::Channel,
    path: &str,
    secret: &str,
    json: &str,
) -> Result<serde_json::Value, tonic::Status> {
    use prost::Message as _;
    let method = method(path);
    let mut de = serde_json::Deserializer::from_str(json);
    let message = prost_reflect::DynamicMessage::deserialize(method.input(), &mut de).unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    crate::guard("the channel", grpc.ready()).await.unwrap();
    let mut request = tonic::Request::new(message.encode_to_vec());
    if !secret.is_empty() {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    }
    let reply = crate::guard(path, grpc.unary(request, path.parse().unwrap(), Raw)).await?;
    let message =
        prost_reflect::DynamicMessage::decode(method.output(), reply.into_inner().as_slice())
            .unwrap();
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
    Ok(message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap())
}

/// The gRPC code a JSON error's `code` names.
pub fn code_named(name: &str) -> tonic::Code {
    (0..=16)
        .map(tonic::Code::from_i32)
        .find(|c| authzd_server::api::code_name(*c) == name)
        .unwrap_or_else(|| panic!("no code named {name:?}"))
}
