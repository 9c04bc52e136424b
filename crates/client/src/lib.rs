//! A client of authzd.
//!
//! # Layout
//!
//! - here: how the command line's clients (`import`, the query commands,
//!   `authzd-bench --target`, the examples) reach a server: the target, TLS
//!   (a CA to verify the server, a client certificate for mTLS, the name to
//!   verify) and the bearer token sent on every call. Reads its files once,
//!   before connecting, and names the file in every error; hands out
//!   channels ([`Explaining`]: a call that fails in the transport says
//!   what is most likely wrong and which flag fixes it, for every command
//!   alike) and knows no RPC.
//! - [`tls`]: the PEM files of TLS, read and checked (the server reads its
//!   own through the same module).
//! - [`snapshot`]: receiving a primary's `Snapshot` stream (a replica's
//!   bootstrap, `authzd backup`).
//! - [`status`]: a gRPC status as a person reads it.

pub mod snapshot;
pub mod status;
pub mod tls;

use std::path::PathBuf;

use clap::Args;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::tls::TlsError;

/// The environment variable a token is read from when no --token-file is
/// given.
pub const TOKEN_ENV: &str = "AUTHZD_TOKEN";

/// TLS and token options shared by every client subcommand. The target
/// itself is each command's own flag (`--target`), as it was before TLS.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// Verify the server's certificate against the CAs in this PEM bundle,
    /// and speak TLS. [default with an https:// target: the system's CAs]
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Present this certificate chain (PEM) to a server that requires
    /// client certificates (mTLS); speak TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry [default: the
    /// target's host]; speak TLS.
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// Send the secret in this file (surrounding whitespace ignored) as
    /// `authorization: Bearer <secret>` on every call. Without it, the
    /// secret in the environment variable AUTHZD_TOKEN, if set.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Whether a client set up with `target` and `args` speaks TLS: an
/// `https://` target, or a bare `HOST:PORT` with any TLS option.
fn speaks_tls(target: &str, args: &ClientArgs) -> bool {
    target.starts_with("https://") || (!target.starts_with("http://") && args.wants_tls())
}

/// How a client speaks to its server, for explaining a transport failure.
#[derive(Debug, Clone, Copy)]
struct Transport {
    tls: bool,
    client_cert: bool,
}

impl Transport {
    fn of(target: &str, args: &ClientArgs) -> Transport {
        Transport {
            tls: speaks_tls(target, args),
            client_cert: args.tls_cert.is_some(),
        }
    }

    /// What a transport failure with these `causes` (lowercase) most
    /// likely means for this client, and the flag that fixes it: the
    /// transport's own words ("h2 protocol error", "transport error") say
    /// neither.
    fn hint(self, causes: &str) -> Option<&'static str> {
        // A TLS server answers a plaintext client's HTTP/2 preface with a
        // TLS alert (which HTTP/2 reads as a bad frame) or by closing the
        // connection; a call already handed to the connection when it
        // closes ends "canceled".
        let plaintext_refused = [
            "h2 protocol error",
            "frame with invalid size",
            "http2 error",
            "connection closed",
            "broken pipe",
            "connection reset",
            "operation was canceled",
        ];
        if !self.tls && plaintext_refused.iter().any(|w| causes.contains(w)) {
            return Some(
                "the server may speak TLS: give an https:// target (with --tls-ca FILE if its certificate is not from a CA this system trusts)",
            );
        }
        // Under TLS 1.3 a refused client certificate shows only as the
        // connection closing (a broken pipe, a reset, a cancelled call).
        if self.tls && !self.client_cert {
            return Some(
                "the server may require a client certificate (mTLS): give --tls-cert FILE and --tls-key FILE",
            );
        }
        None
    }

    /// The status a failed call gets: tonic's own for `error`, its message
    /// followed by the hint if there is one (the original kept as its
    /// source).
    fn status(self, error: tonic::transport::Error) -> tonic::Status {
        let status = tonic::Status::from_error(Box::new(error));
        let Some(hint) = self.hint(&tls::causes(&status).to_lowercase()) else {
            return status;
        };
        let mut explained =
            tonic::Status::new(status.code(), format!("{}; {hint}", status.message()));
        explained.set_source(std::sync::Arc::new(status));
        explained
    }
}

/// A channel whose transport failures explain themselves: every call of
/// every command that connects through [`Remote`] fails with a status that
/// says what the failure most likely means and which flag fixes it
/// (a plaintext client against a TLS server, a client without a
/// certificate against an mTLS server). Statuses the server sent pass
/// unchanged.
#[derive(Debug, Clone)]
pub struct Explaining {
    channel: Channel,
    transport: Transport,
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Explaining {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::Status;
    type Future = Explained;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        let transport = self.transport;
        self.channel.poll_ready(cx).map_err(|e| transport.status(e))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Explained {
        Explained {
            call: self.channel.call(request),
            transport: self.transport,
        }
    }
}

/// A call through [`Explaining`].
#[derive(Debug)]
pub struct Explained {
    call: tonic::transport::channel::ResponseFuture,
    transport: Transport,
}

impl std::future::Future for Explained {
    type Output = Result<http::Response<tonic::body::Body>, tonic::Status>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let transport = self.transport;
        std::pin::Pin::new(&mut self.call)
            .poll(cx)
            .map_err(|e| transport.status(e))
    }
}

impl ClientArgs {
    /// Whether any option asks for TLS.
    fn wants_tls(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_server_name.is_some()
    }

    /// Whether any option was given at all (the bench refuses them for its
    /// in-process server).
    pub fn any(&self) -> bool {
        self.wants_tls() || self.token_file.is_some()
    }
}

/// Why a client could not be set up or connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A TLS file could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The token could not be read or is not a valid header value.
    #[error("{0}")]
    Token(String),
    /// The target is not an address or URL, or contradicts the options.
    #[error("target {target}: {reason}")]
    Target {
        /// The target as given.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The connection failed.
    #[error("connecting to {target}: {reason}")]
    Connect {
        /// The target as given.
        target: String,
        /// Why, with every cause (the TLS handshake's included).
        reason: String,
    },
}

/// Adds `authorization: Bearer <secret>` to every call, if there is a
/// secret.
#[derive(Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Bearer {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<secret>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Bearer {
    /// The token of `args`: the file's, else the environment's, else none.
    fn load(args: &ClientArgs) -> Result<Bearer, ClientError> {
        let (secret, source) = match &args.token_file {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|e| {
                    ClientError::Token(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    ))
                })?,
                path.display().to_string(),
            ),
            None => match std::env::var(TOKEN_ENV) {
                Ok(secret) => (secret, TOKEN_ENV.to_string()),
                Err(_) => return Ok(Bearer(None)),
            },
        };
        Bearer::from_secret(&secret, &source)
    }

    /// The header for `secret` (surrounding white space ignored); `source`
    /// names where it came from in errors.
    pub fn from_secret(secret: &str, source: &str) -> Result<Bearer, ClientError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(ClientError::Token(format!(
                "the token in {source} is empty"
            )));
        }
        let unfit = || {
            ClientError::Token(format!(
                "the token in {source} is not printable ASCII without spaces, so it cannot travel in a header"
            ))
        };
        // HTTP lets header values carry bytes past ASCII; a secret should
        // not depend on how a proxy treats them.
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(unfit());
        }
        let mut value: AsciiMetadataValue =
            MetadataValue::try_from(format!("Bearer {secret}")).map_err(|_| unfit())?;
        // Kept out of HPACK's tables, as a credential should be.
        value.set_sensitive(true);
        Ok(Bearer(Some(value)))
    }
}

/// A channel that sends the token on every call.
pub type ClientChannel = InterceptedService<Explaining, Bearer>;

/// A server to connect to: the endpoint (TLS configured) and the token,
/// read once for any number of connections.
#[derive(Debug, Clone)]
pub struct Remote {
    target: String,
    transport: Transport,
    endpoint: Endpoint,
    bearer: Bearer,
}

impl Remote {
    /// Reads the files of `args` and prepares to reach `target`:
    /// `HOST:PORT` (TLS if any TLS option is given, else plaintext), or an
    /// `http://` or `https://` URL.
    pub fn new(target: &str, args: &ClientArgs) -> Result<Remote, ClientError> {
        let refuse = |reason: &str| ClientError::Target {
            target: target.to_string(),
            reason: reason.to_string(),
        };
        let (url, tls) = if target.starts_with("https://") {
            (target.to_string(), true)
        } else if target.starts_with("http://") {
            if args.wants_tls() {
                return Err(refuse(
                    "an http:// target is plaintext, but TLS options were given",
                ));
            }
            (target.to_string(), false)
        } else if args.wants_tls() {
            (format!("https://{target}"), true)
        } else {
            (format!("http://{target}"), false)
        };
        let mut endpoint =
            http2_windows(Endpoint::from_shared(url).map_err(|e| refuse(&tls::causes(&e)))?);
        if tls {
            endpoint = endpoint
                .tls_config(tls_config(args)?)
                .map_err(|e| refuse(&tls::causes(&e)))?;
        }
        Ok(Remote {
            target: target.to_string(),
            transport: Transport::of(target, args),
            endpoint,
            bearer: Bearer::load(args)?,
        })
    }

    /// The target as given.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The endpoint, TLS configured, for a caller that manages its own
    /// connections (a replica's channel to its primary).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The `authorization` header value the token makes, if there is one.
    pub fn authorization(&self) -> Option<AsciiMetadataValue> {
        self.bearer.0.clone()
    }

    /// Adjusts the endpoint (timeouts, TCP settings).
    pub fn with(mut self, adjust: impl FnOnce(Endpoint) -> Endpoint) -> Remote {
        self.endpoint = adjust(self.endpoint);
        self
    }

    /// A new connection.
    pub async fn connect(&self) -> Result<ClientChannel, ClientError> {
        let channel = self
            .endpoint
            .connect()
            .await
            .map_err(|e| ClientError::Connect {
                target: self.target.clone(),
                reason: tls::causes(&e),
            })?;
        let channel = Explaining {
            channel,
            transport: self.transport,
        };
        Ok(InterceptedService::new(channel, self.bearer.clone()))
    }
}

/// The largest HTTP/2 flow-control window (2^31 - 1).
const MAX_HTTP2_WINDOW: u32 = (1 << 31) - 1;

/// Gives `endpoint`'s connections the largest HTTP/2 connection window,
/// leaving each stream's own window as it is.
///
/// Why: the HTTP/2 library (h2 0.4.20 and later) closes its own connection
/// with `ENHANCE_YOUR_CALM` once the DATA frames under 256 bytes that it
/// holds unread cost more framing than a budget of half the connection
/// window. A Watch stream the application reads late is exactly that: its
/// small messages pile up unread, and with many such streams on one
/// connection the library tore the connection down before the server's
/// flow control ever stopped, so no stream could learn the revision to
/// resume after. With the largest connection window that budget is 1 GiB,
/// and what a connection holds unread is bounded by each stream's window
/// instead: the server stops sending to a stream whose window is full, and
/// its bound on what all Watch streams hold ends the furthest behind
/// resumably.
pub fn http2_windows(endpoint: Endpoint) -> Endpoint {
    endpoint.initial_connection_window_size(MAX_HTTP2_WINDOW)
}

fn tls_config(args: &ClientArgs) -> Result<ClientTlsConfig, ClientError> {
    let mut config = ClientTlsConfig::new();
    config = match &args.tls_ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(tls::certificates(ca)?.bytes)),
        None => config.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let identity = tls::Identity::load(cert, key)?;
        config = config.identity(Identity::from_pem(identity.cert.bytes, identity.key.bytes));
    }
    if let Some(name) = &args.tls_server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(text: &str) -> (tempfile::TempDir, ClientArgs) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, text).unwrap();
        let args = ClientArgs {
            token_file: Some(path),
            ..ClientArgs::default()
        };
        (dir, args)
    }

    /// The token file's secret, trimmed, goes out on every call as
    /// `authorization: Bearer <secret>`, marked sensitive; `Debug` never
    /// shows it.
    #[test]
    fn the_token_travels_as_a_bearer_header() {
        let (_dir, args) = with_token("  s3cret\n");
        let mut bearer = Bearer::load(&args).unwrap();
        assert_eq!(format!("{bearer:?}"), "Bearer(<secret>)");
        for _ in 0..2 {
            let request = bearer.call(tonic::Request::new(())).unwrap();
            let value = request.metadata().get("authorization").unwrap();
            assert_eq!(value.to_str().unwrap(), "Bearer s3cret");
            assert!(value.is_sensitive());
        }
    }

    /// An empty token file, one that is not ASCII and one that cannot be
    /// read are refused, naming the file; never sent as a blank header.
    #[test]
    fn unusable_tokens_are_refused() {
        for text in ["\n", "sécret", "two words"] {
            let (_dir, args) = with_token(text);
            let e = Bearer::load(&args).unwrap_err().to_string();
            assert!(e.contains("token"), "{e}");
        }
        let args = ClientArgs {
            token_file: Some("/nonexistent/token".into()),
            ..ClientArgs::default()
        };
        let e = Bearer::load(&args).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/token"), "{e}");
    }

    /// An http:// target with TLS options is a contradiction, refused
    /// before connecting; a bare HOST:PORT with a TLS option means TLS.
    #[test]
    fn targets_and_tls_options_agree() {
        let tls = ClientArgs {
            tls_server_name: Some("authzd.internal".into()),
            ..ClientArgs::default()
        };
        let e = Remote::new("http://127.0.0.1:1", &tls).unwrap_err();
        assert!(e.to_string().contains("TLS options"), "{e}");
        let remote = Remote::new("127.0.0.1:1", &ClientArgs::default()).unwrap();
        assert_eq!(remote.endpoint.uri().scheme_str(), Some("http"));
        let missing_ca = ClientArgs {
            tls_ca: Some("/nonexistent/ca.crt".into()),
            ..ClientArgs::default()
        };
        let e = Remote::new("127.0.0.1:1", &missing_ca).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.crt"), "{e}");
    }
}
