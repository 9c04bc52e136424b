//! The PEM files of TLS, read and checked once at start-up: a certificate
//! chain, a private key, a CA bundle. Every error names the file at fault,
//! so that a wrong path or a key in the certificate's place is clear before
//! anything listens or connects. Shared by the server and the CLI's
//! clients; hands back checked bytes and must not know tonic or rustls
//! (they parse the same bytes again when they build their configuration).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but does not hold what it should.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in lowercase.
        reason: String,
    },
}

/// The contents of a checked PEM file, and where it came from.
#[derive(Clone)]
pub struct Pem {
    /// The file, for later error messages.
    pub path: PathBuf,
    /// Its bytes, holding at least one item of the kind it was checked for.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Pem {
    // A key's bytes must never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads one or more PEM `CERTIFICATE` blocks: a chain (leaf first) or a
/// CA bundle.
pub fn certificates(path: &Path) -> Result<Pem, TlsError> {
    let bytes = read(path)?;
    let mut count = 0usize;
    for item in CertificateDer::pem_slice_iter(&bytes) {
        item.map_err(|e| invalid(path, format!("not a valid PEM certificate file: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid(
            path,
            "holds no PEM certificate (a \"BEGIN CERTIFICATE\" block)",
        ));
    }
    Ok(Pem {
        path: path.to_path_buf(),
        bytes,
    })
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<Pem, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        invalid(
            path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    Ok(Pem {
        path: path.to_path_buf(),
        bytes,
    })
}

/// A certificate chain and its key, checked file by file.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The chain, leaf first.
    pub cert: Pem,
    /// The leaf's private key.
    pub key: Pem,
}

impl Identity {
    /// Reads `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        Ok(Identity {
            cert: certificates(cert)?,
            key: private_key(key)?,
        })
    }

    /// Checks that the key is the leaf certificate's, as the TLS stack
    /// will when it is put together: the same comparison of public keys.
    fn check_pair(&self) -> Result<(), TlsError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                invalid(
                    &self.cert.path,
                    format!("not a valid PEM certificate file: {e}"),
                )
            })?;
        let key = PrivateKeyDer::from_pem_slice(&self.key.bytes).map_err(|e| {
            invalid(
                &self.key.path,
                format!("holds no usable PEM private key: {e}"),
            )
        })?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
            invalid(
                &self.key.path,
                format!(
                    "does not match the certificate in {} ({e}); give the key the certificate was issued for",
                    self.cert.path.display()
                ),
            )
        })?;
        Ok(())
    }
}

/// What the server's listener needs for TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate chain and key.
    pub identity: Identity,
    /// With it, every client must present a certificate that chains to one
    /// of these CAs (mTLS); without it, clients are not asked for one.
    pub client_ca: Option<Pem>,
}

impl ServerTls {
    /// Reads the server's files, and checks that the key is the
    /// certificate's (before anything is served or created).
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<ServerTls, TlsError> {
        let identity = Identity::load(cert, key)?;
        identity.check_pair()?;
        Ok(ServerTls {
            identity,
            client_ca: client_ca.map(certificates).transpose()?,
        })
    }

    /// The files, for a message about the whole set (a failure only the
    /// TLS stack finds, when they are put together).
    pub fn files(&self) -> String {
        let mut files = format!(
            "{}, {}",
            self.identity.cert.path.display(),
            self.identity.key.path.display()
        );
        if let Some(ca) = &self.client_ca {
            files.push_str(&format!(", {}", ca.path.display()));
        }
        files
    }
}

/// `error` and every cause under it, joined: tonic's transport errors say
/// only "transport error" and keep what rustls or the socket said in
/// their sources.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    // Bounded: a cause chain is finite, and a cycle is cut at a few.
    for _ in 0..8 {
        let Some(cause) = next else { break };
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file, an empty one, a key given as the certificate and a
    /// certificate given as the key are each refused naming the file.
    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = certificates(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("missing.pem"),
            "{e}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = certificates(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );

        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(private_key(&key).is_ok());
        let e = certificates(&key).unwrap_err().to_string();
        assert!(
            e.contains("key.pem") && e.contains("no PEM certificate"),
            "{e}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n%%%\n").unwrap();
        let e = certificates(&garbage).unwrap_err().to_string();
        assert!(e.contains("garbage.pem"), "{e}");
        let e = private_key(&garbage).unwrap_err().to_string();
        assert!(
            e.contains("garbage.pem") && e.contains("no usable PEM private key"),
            "{e}"
        );
    }
}
