//! `authzd serve`'s TLS flags: the server's certificate and key, and the
//! CA that client certificates must chain to (mTLS). Reads the files once
//! at start-up through [`authzd_client::tls`]; must not build the transport (that
//! is `server`'s).

use std::path::PathBuf;

use clap::Args;

use authzd_client::tls::{ServerTls, TlsError};

/// TLS for `authzd serve`. Without `--tls-cert` the listener is plaintext.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeTlsArgs {
    /// Serve TLS with this certificate chain (PEM, leaf first).
    #[arg(long, env = "AUTHZD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "AUTHZD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require every client to present a certificate issued by a CA in
    /// this PEM bundle (mTLS). Needs --tls-cert.
    #[arg(long, env = "AUTHZD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServeTlsArgs {
    /// The checked files, or `None` for a plaintext listener.
    pub fn load(&self) -> Result<Option<ServerTls>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                ServerTls::load(cert, key, self.tls_client_ca.as_deref()).map(Some)
            }
            // clap's `requires` makes the two come together.
            _ => Ok(None),
        }
    }
}
