//! Callers (docs/tokens.md): the token set read from the `--tokens` file, the
//! authentication of a bearer secret, and every decision on what a caller's
//! kind and tenant let it do, in one place.
//!
//! A token is a name, a [`Kind`], optionally the one tenant it is bound to,
//! and the SHA-256 digest of its secret; the secret itself is never stored,
//! logged or returned. A presented secret is hashed and its digest compared
//! with every token's in constant time. Without a tokens file every caller
//! is the trusted [`Caller`] named "anonymous", with administrator rights
//! (the server then refuses to listen beyond loopback unless told
//! `--insecure`, see [`exposure`]).
//!
//! What each use case asks of its caller is a [`Rule`], given by the
//! operation table (`ops::UseCase`); an edge only finds the use case a
//! request names. Must not know tonic or protobuf: an edge maps a
//! [`Refusal`] to its status. Must not read the file except at start-up
//! and on [`Callers::reload`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use authzd_core::model::{Quoted, SubjectId, TenantId, check_id, clip};

/// What a token may do; each kind may do everything the kinds below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Checks, listings, `Get*`, `Watch`, `ReadSchema`.
    Read,
    /// Also membership and directory writes, each made on behalf of an actor.
    Write,
    /// Also `WriteSchema`, tenant creation and settings, `ListTenants`
    /// across tenants, and system writes (writes without an actor).
    Admin,
}

impl Kind {
    /// The name used in the tokens file and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Admin => "admin",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "read" => Ok(Kind::Read),
            "write" => Ok(Kind::Write),
            "admin" => Ok(Kind::Admin),
            other => Err(format!(
                "unknown kind {}; use \"read\", \"write\" or \"admin\"",
                authzd_core::model::Quoted(other)
            )),
        }
    }
}

/// What an RPC reaches besides the tenant its request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// One tenant, named in the request (checked by [`Caller::may_touch`]).
    Tenant,
    /// Every tenant at once (the shared schema): a tenant-bound token may
    /// not make it.
    AllTenants,
    /// Only what is shared and read-only (reading the schema, listing the
    /// tenants the caller may see).
    Shared,
}

/// What a call asks of its caller: a use case's row of the operation
/// table, or an edge's rule for what is no use case (health, an unknown
/// method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The use case's name, `Service/Method` (as logs, metrics, the audit
    /// trail and refusals show it, whatever the edge).
    pub name: &'static str,
    /// The least kind that may call it.
    pub needs: Kind,
    /// What it reaches.
    pub reach: Extent,
    /// Whether it is a stream (`Watch`, replication), bounded separately
    /// from requests.
    pub watch: bool,
    /// Whether it writes: its refusals by token enter the audit trail.
    pub writes: bool,
}

/// Why a caller was refused. Messages name the token, never its secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No `authorization: Bearer <secret>` header, or a bearer one without
    /// a secret.
    #[error("missing credentials: send the header `authorization: Bearer <secret>`")]
    Missing,
    /// An `authorization` header of another scheme (`Basic …`).
    #[error(
        "unsupported authorization scheme {}: send the header `authorization: Bearer <secret>`",
        Quoted(scheme)
    )]
    UnsupportedScheme {
        /// The scheme the header named, cut to [`MAX_SCHEME_LEN`] bytes.
        scheme: String,
    },
    /// A secret no configured token has (wrong, or revoked).
    #[error("unknown token")]
    Unknown,
    /// The token's kind is below what the RPC needs.
    #[error("token {token} ({kind}) may not call {rpc}: needs {needs}")]
    Kind {
        /// The token's name.
        token: Arc<str>,
        /// Its kind.
        kind: Kind,
        /// The RPC.
        rpc: &'static str,
        /// The kind it needs.
        needs: Kind,
    },
    /// A tenant-bound token named another tenant.
    #[error("token {token} is bound to tenant {bound} and may not call {rpc} for tenant {tenant}")]
    Tenant {
        /// The token's name.
        token: Arc<str>,
        /// The one tenant it may touch.
        bound: TenantId,
        /// The RPC.
        rpc: &'static str,
        /// The tenant the request named (as given, possibly not a valid id).
        tenant: String,
    },
    /// A tenant-bound token called an RPC that reaches every tenant.
    #[error(
        "token {token} is bound to tenant {bound} and may not call {rpc}, which reaches every tenant: needs a token bound to no tenant"
    )]
    AllTenants {
        /// The token's name.
        token: Arc<str>,
        /// The one tenant it may touch.
        bound: TenantId,
        /// The RPC.
        rpc: &'static str,
    },
    /// An unbound token below admin asked for every tenant's list.
    #[error("token {token} ({kind}) may not call {rpc} across tenants: needs admin")]
    AcrossTenants {
        /// The token's name.
        token: Arc<str>,
        /// Its kind.
        kind: Kind,
        /// The RPC.
        rpc: &'static str,
    },
    /// A write without an actor from a token below admin.
    #[error(
        "token {token} ({kind}) may not call {rpc} without options.actor: a system write needs admin"
    )]
    SystemWrite {
        /// The token's name.
        token: Arc<str>,
        /// Its kind.
        kind: Kind,
        /// The RPC.
        rpc: &'static str,
    },
    /// The token has as many calls of this sort in progress as it may.
    #[error("token {token} already has {limit} {what} in progress; retry later")]
    Busy {
        /// The token's name.
        token: Arc<str>,
        /// "requests" or "Watch streams".
        what: &'static str,
        /// The bound.
        limit: usize,
    },
}

/// How many calls one token may have in progress at once; one more is
/// refused at once (RESOURCE_EXHAUSTED), never queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Unary requests in progress.
    pub requests: usize,
    /// Open `Watch` streams (not counted as requests).
    pub watches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: authzd_core::limits::DEFAULT_TOKEN_REQUESTS,
            watches: authzd_core::limits::DEFAULT_TOKEN_WATCHES,
        }
    }
}

impl From<&crate::config::Config> for Limits {
    fn from(config: &crate::config::Config) -> Self {
        Limits {
            requests: config.token_requests.max(1),
            watches: config.token_watches.max(1),
        }
    }
}

/// A token's counters of calls in progress. Shared by a token's old and
/// new entries across a reload (matched by name), so reloading never
/// frees a token of its bound.
#[derive(Debug, Default)]
struct Bounds {
    requests: AtomicUsize,
    watches: AtomicUsize,
}

/// Who is calling: a token's name, kind and tenant binding (never its
/// secret), or the trusted anonymous caller when no tokens are configured.
#[derive(Debug)]
pub struct Caller {
    name: Arc<str>,
    kind: Kind,
    tenant: Option<TenantId>,
    /// `None` for the anonymous caller, which no bound limits.
    bounds: Option<(Arc<Bounds>, Limits)>,
}

/// A call in progress, counted against its token until dropped.
#[derive(Debug)]
pub struct Permit {
    counted: Option<(Arc<Bounds>, bool)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((bounds, watch)) = &self.counted {
            let counter = if *watch {
                &bounds.watches
            } else {
                &bounds.requests
            };
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Which tenants a listing of tenants may show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// All of them.
    All,
    /// Only this one.
    Only(TenantId),
}

impl Caller {
    /// The name the anonymous caller logs under.
    pub const ANONYMOUS: &'static str = "anonymous";

    fn anonymous() -> Caller {
        Caller {
            name: Arc::from(Self::ANONYMOUS),
            kind: Kind::Admin,
            tenant: None,
            bounds: None,
        }
    }

    /// The token's name ("anonymous" without tokens): for logs and the
    /// audit trail.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The token's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The tenant the token is bound to, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// May this caller make a call of `rule` at all (its kind, and for a
    /// use case that reaches every tenant, no tenant binding)?
    pub fn may_call(&self, rule: &Rule) -> Result<(), Refusal> {
        if self.kind < rule.needs {
            return Err(Refusal::Kind {
                token: self.name.clone(),
                kind: self.kind,
                rpc: rule.name,
                needs: rule.needs,
            });
        }
        match (&self.tenant, rule.reach) {
            (Some(bound), Extent::AllTenants) => Err(Refusal::AllTenants {
                token: self.name.clone(),
                bound: bound.clone(),
                rpc: rule.name,
            }),
            _ => Ok(()),
        }
    }

    /// May this caller touch `tenant` (as the request names it)?
    pub fn may_touch(&self, rule: &Rule, tenant: &str) -> Result<(), Refusal> {
        match &self.tenant {
            Some(bound) if bound.as_str() != tenant => Err(Refusal::Tenant {
                token: self.name.clone(),
                bound: bound.clone(),
                rpc: rule.name,
                tenant: authzd_core::model::clip(tenant, 256).to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// May this caller write with this actor (`None`: a system write, which
    /// only an admin token may make)? With an actor, the actor rules of the
    /// engine decide the rest.
    pub fn may_write(&self, rule: &Rule, actor: Option<&SubjectId>) -> Result<(), Refusal> {
        if actor.is_none() && self.kind < Kind::Admin {
            return Err(Refusal::SystemWrite {
                token: self.name.clone(),
                kind: self.kind,
                rpc: rule.name,
            });
        }
        Ok(())
    }

    /// Which tenants a listing (of tenants, of the audit trail) may show this caller: a
    /// bound token sees its tenant; an unbound one needs admin.
    pub fn visible_tenants(&self, rule: &Rule) -> Result<Visible, Refusal> {
        match &self.tenant {
            Some(bound) => Ok(Visible::Only(bound.clone())),
            None if self.kind == Kind::Admin => Ok(Visible::All),
            None => Err(Refusal::AcrossTenants {
                token: self.name.clone(),
                kind: self.kind,
                rpc: rule.name,
            }),
        }
    }

    /// Counts one call of `rule` against the token's bounds, or refuses it
    /// if the token is at its bound.
    pub fn enter(&self, rule: &Rule) -> Result<Permit, Refusal> {
        let Some((bounds, limits)) = &self.bounds else {
            return Ok(Permit { counted: None });
        };
        let (counter, limit, what) = if rule.watch {
            (&bounds.watches, limits.watches, "Watch streams")
        } else {
            (&bounds.requests, limits.requests, "requests")
        };
        // Counting first and undoing an overshoot keeps this one atomic
        // step on the common path.
        if counter.fetch_add(1, Ordering::AcqRel) >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Busy {
                token: self.name.clone(),
                what,
                limit,
            });
        }
        Ok(Permit {
            counted: Some((bounds.clone(), rule.watch)),
        })
    }
}

/// Why a tokens file was refused. Each names the file, and the entry and
/// field where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape (the message has line and
    /// key).
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// One entry is invalid.
    #[error("{file}: token[{index}]{name}: {field}: {reason}")]
    Entry {
        /// The file.
        file: String,
        /// The entry's position, from 0.
        index: usize,
        /// ` (its name)`, when it has a usable one.
        name: String,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The file has no `[[token]]` entry, which would lock every caller out.
    #[error("{file}: no [[token]] entries; add one (`authzd token new`) or serve without --tokens")]
    Empty {
        /// The file.
        file: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    token: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    kind: String,
    tenant: Option<String>,
    sha256: String,
}

/// One configured token.
#[derive(Debug)]
struct Token {
    digest: [u8; 32],
    caller: Arc<Caller>,
}

/// Parses a tokens file's text. `bounds` gives the counters of tokens that
/// already exist (a reload), by name.
fn parse(
    file: &str,
    text: &str,
    limits: Limits,
    bounds: impl Fn(&str) -> Option<Arc<Bounds>>,
) -> Result<Vec<Token>, TokenError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| TokenError::Syntax {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    if raw.token.is_empty() {
        return Err(TokenError::Empty {
            file: file.to_string(),
        });
    }
    let mut tokens: Vec<Token> = Vec::with_capacity(raw.token.len());
    for (index, t) in raw.token.into_iter().enumerate() {
        let entry = |name: &str, field: &'static str, reason: String| TokenError::Entry {
            file: file.to_string(),
            index,
            name: if name.is_empty() {
                String::new()
            } else {
                format!(" ({name})")
            },
            field,
            reason,
        };
        let name = validate_name(&t.name).map_err(|r| entry("", "name", r))?;
        let kind: Kind = t.kind.parse().map_err(|r| entry(&name, "kind", r))?;
        let tenant = match &t.tenant {
            Some(tenant) => Some(
                TenantId::try_from(tenant.as_str())
                    .map_err(|e| entry(&name, "tenant", e.to_string()))?,
            ),
            None => None,
        };
        let digest = parse_digest(&t.sha256).map_err(|r| entry(&name, "sha256", r))?;
        if tokens.iter().any(|o| *o.caller.name == *name) {
            return Err(entry(&name, "name", "another entry has this name".into()));
        }
        if tokens.iter().any(|o| o.digest == digest) {
            return Err(entry(
                &name,
                "sha256",
                "another entry has this digest (the same secret)".into(),
            ));
        }
        let counters = bounds(&name).unwrap_or_default();
        tokens.push(Token {
            digest,
            caller: Arc::new(Caller {
                name: Arc::from(name.as_str()),
                kind,
                tenant,
                bounds: Some((counters, limits)),
            }),
        });
    }
    Ok(tokens)
}

/// A token name: an id (no whitespace or control characters), at most 64
/// bytes, as it appears in logs.
fn validate_name(name: &str) -> Result<String, String> {
    check_id("token name", name).map_err(|e| e.to_string())?;
    if name.len() > 64 {
        return Err(format!("{} bytes long; the limit is 64", name.len()));
    }
    Ok(name.to_string())
}

fn parse_digest(hex: &str) -> Result<[u8; 32], String> {
    let bad = || "expected 64 hexadecimal digits (the SHA-256 of the secret)".to_string();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Every caller the server knows: the token set (swapped whole on reload,
/// so a request sees one set or the other, never a mix), or the anonymous
/// caller alone when no tokens file is configured.
#[derive(Debug)]
pub struct Callers {
    /// The tokens file; `None`: no tokens, everyone is anonymous.
    file: Option<PathBuf>,
    tokens: ArcSwap<Vec<Token>>,
    anonymous: Arc<Caller>,
    limits: Limits,
}

impl Callers {
    /// No tokens: every caller is trusted as the anonymous administrator.
    pub fn trust_all() -> Callers {
        Callers {
            file: None,
            tokens: ArcSwap::from_pointee(Vec::new()),
            anonymous: Arc::new(Caller::anonymous()),
            limits: Limits::default(),
        }
    }

    /// Reads and validates the tokens file.
    pub fn load(file: &Path, limits: Limits) -> Result<Callers, TokenError> {
        let tokens = read(file, limits, |_| None)?;
        Ok(Callers {
            file: Some(file.to_path_buf()),
            tokens: ArcSwap::from_pointee(tokens),
            anonymous: Arc::new(Caller::anonymous()),
            limits,
        })
    }

    /// Whether callers must present a token.
    pub fn configured(&self) -> bool {
        self.file.is_some()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.tokens.load().len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The anonymous caller, for calls that need no token (health,
    /// reflection).
    pub fn anonymous(&self) -> Arc<Caller> {
        self.anonymous.clone()
    }

    /// Re-reads the tokens file (on SIGHUP) and swaps the new set in,
    /// returning how many tokens it has; an invalid file leaves the old set
    /// in force. Without a tokens file there is nothing to read.
    pub fn reload(&self) -> Result<usize, TokenError> {
        let Some(file) = &self.file else {
            return Ok(0);
        };
        let old = self.tokens.load_full();
        let tokens = read(file, self.limits, |name| {
            old.iter()
                .find(|t| &*t.caller.name == name)
                .and_then(|t| t.caller.bounds.as_ref().map(|(b, _)| b.clone()))
        })?;
        let count = tokens.len();
        self.tokens.store(Arc::new(tokens));
        Ok(count)
    }

    /// Who presents this `authorization` header value (`None`: none sent).
    /// Without tokens, everyone is anonymous whatever they send.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<Caller>, Refusal> {
        if self.file.is_none() {
            return Ok(self.anonymous.clone());
        }
        let secret = bearer(authorization.ok_or(Refusal::Missing)?)?;
        let digest: [u8; 32] = Sha256::digest(secret).into();
        let tokens = self.tokens.load();
        // Every digest is compared, each in constant time, so the time
        // taken says nothing about how much of a secret was right.
        let mut found = None;
        for token in tokens.iter() {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token.caller.clone());
            }
        }
        found.ok_or(Refusal::Unknown)
    }
}

fn read(
    file: &Path,
    limits: Limits,
    bounds: impl Fn(&str) -> Option<Arc<Bounds>>,
) -> Result<Vec<Token>, TokenError> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| TokenError::Read {
        file: name.clone(),
        source,
    })?;
    parse(&name, &text, limits, bounds)
}

/// The secret of an `authorization: Bearer <secret>` value (the scheme is
/// case-insensitive, as HTTP says).
fn bearer(value: &[u8]) -> Result<&[u8], Refusal> {
    let value = value.trim_ascii();
    let (scheme, secret) = match value.iter().position(|b| b.is_ascii_whitespace()) {
        Some(at) => value.split_at(at),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        let scheme = String::from_utf8_lossy(scheme);
        return Err(Refusal::UnsupportedScheme {
            scheme: clip(&scheme, MAX_SCHEME_LEN).to_string(),
        });
    }
    let secret = secret.trim_ascii();
    if secret.is_empty() {
        return Err(Refusal::Missing);
    }
    Ok(secret)
}

/// Longest authorization scheme a refusal quotes, in bytes: the header is
/// the caller's, and a message must not echo all of it.
const MAX_SCHEME_LEN: usize = 32;

/// A fresh token: its secret (shown once) and the entry to paste into the
/// tokens file.
#[derive(Debug)]
pub struct NewToken {
    /// The secret, for the caller's `authorization: Bearer` header.
    pub secret: String,
    /// The `[[token]]` entry holding its digest.
    pub entry: String,
}

/// Makes a token: 32 bytes from the operating system's generator, written
/// as `authzd_` and 64 hexadecimal digits (the prefix lets secret scanners
/// recognise a leaked one).
pub fn new_token(name: &str, kind: Kind, tenant: Option<&str>) -> Result<NewToken, String> {
    let name = validate_name(name).map_err(|r| format!("--name: {r}"))?;
    if let Some(tenant) = tenant {
        TenantId::try_from(tenant).map_err(|e| format!("--tenant: {e}"))?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the system: {e}"))?;
    let secret = format!("authzd_{}", to_hex(&bytes));
    let digest = to_hex(&Sha256::digest(secret.as_bytes()));
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut entry = format!("[[token]]\nname = {}\nkind = \"{kind}\"\n", quote(&name));
    if let Some(tenant) = tenant {
        entry.push_str(&format!("tenant = {}\n", quote(tenant)));
    }
    entry.push_str(&format!("sha256 = \"{digest}\"\n"));
    Ok(NewToken { secret, entry })
}

/// Whom a server without tokens trusts, decided before it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Tokens are configured: callers authenticate.
    Tokens,
    /// No tokens, on a loopback address: every local process is trusted.
    Loopback,
    /// No tokens on a non-loopback address, allowed by `--insecure`: every
    /// process that reaches the port is trusted.
    Insecure,
}

/// Refuses to serve without tokens beyond loopback unless `insecure`.
pub fn exposure(listen: SocketAddr, tokens: bool, insecure: bool) -> Result<Exposure, String> {
    if tokens {
        Ok(Exposure::Tokens)
    } else if listen.ip().is_loopback() {
        Ok(Exposure::Loopback)
    } else if insecure {
        Ok(Exposure::Insecure)
    } else {
        Err(format!(
            "refusing to listen on {listen} without --tokens: every caller would be trusted as an administrator; give --tokens FILE, listen on a loopback address, or pass --insecure"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "unit tests: a failed expectation is a failed test"
    )]
    use super::*;

    fn parsed(text: &str) -> Result<Vec<Token>, TokenError> {
        parse("tokens.toml", text, Limits::default(), |_| None)
    }

    fn entry(name: &str, kind: &str, secret: &str) -> String {
        format!(
            "[[token]]\nname = \"{name}\"\nkind = \"{kind}\"\nsha256 = \"{}\"\n",
            to_hex(&Sha256::digest(secret.as_bytes()))
        )
    }

    /// A file's errors name the file, the entry and the field.
    #[test]
    fn errors_name_file_entry_and_field() {
        let bad_kind = parsed(&entry("a", "root", "s")).unwrap_err().to_string();
        assert!(
            bad_kind.starts_with("tokens.toml: token[0] (a): kind: unknown kind \"root\""),
            "{bad_kind}"
        );
        let text = format!(
            "{}[[token]]\nname = \"b\"\nkind = \"read\"\nsha256 = \"abc\"\n",
            entry("a", "read", "s")
        );
        let bad_hex = parsed(&text).unwrap_err().to_string();
        assert!(
            bad_hex.starts_with("tokens.toml: token[1] (b): sha256: expected 64"),
            "{bad_hex}"
        );
        let twice = format!("{}{}", entry("a", "read", "s"), entry("a", "read", "t"));
        assert!(
            parsed(&twice)
                .unwrap_err()
                .to_string()
                .contains("token[1] (a): name: another entry")
        );
        let same = format!("{}{}", entry("a", "read", "s"), entry("b", "read", "s"));
        assert!(
            parsed(&same)
                .unwrap_err()
                .to_string()
                .contains("token[1] (b): sha256: another entry")
        );
        let unknown =
            parsed("[[token]]\nname = \"a\"\nkind = \"read\"\nsha256 = \"\"\nsecret = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            unknown.starts_with("tokens.toml: ") && unknown.contains("secret"),
            "{unknown}"
        );
        assert!(matches!(parsed(""), Err(TokenError::Empty { .. })));
        let bad_name = parsed(&entry("has space", "read", "s"))
            .unwrap_err()
            .to_string();
        assert!(bad_name.contains("token[0]: name: "), "{bad_name}");
    }

    /// The secret authenticates its token; another secret, a missing header
    /// or another scheme do not.
    #[test]
    fn bearer_secrets_authenticate_their_token() {
        let callers = Callers {
            file: Some(PathBuf::from("tokens.toml")),
            tokens: ArcSwap::from_pointee(
                parsed(&format!(
                    "{}{}",
                    entry("reader", "read", "s1"),
                    entry("writer", "write", "s2")
                ))
                .unwrap(),
            ),
            anonymous: Arc::new(Caller::anonymous()),
            limits: Limits::default(),
        };
        let who = |h: Option<&str>| callers.authenticate(h.map(str::as_bytes));
        assert_eq!(&**who(Some("Bearer s2")).unwrap().name(), "writer");
        assert_eq!(&**who(Some("bearer  s1 ")).unwrap().name(), "reader");
        assert!(matches!(who(Some("Bearer s3")), Err(Refusal::Unknown)));
        assert!(matches!(
            who(Some("Basic s1")),
            Err(Refusal::UnsupportedScheme { scheme }) if scheme == "Basic"
        ));
        assert!(matches!(who(Some("Bearer")), Err(Refusal::Missing)));
        assert!(matches!(who(Some("Bearer ")), Err(Refusal::Missing)));
        assert!(matches!(who(None), Err(Refusal::Missing)));
        let open = Callers::trust_all();
        assert_eq!(&**open.authenticate(None).unwrap().name(), "anonymous");
    }

    /// A new token's entry parses back to a token its secret authenticates.
    #[test]
    fn a_new_token_round_trips() {
        let made = new_token("billing", Kind::Write, Some("acme")).unwrap();
        assert!(made.secret.starts_with("authzd_") && made.secret.len() == 7 + 64);
        let tokens = parsed(&made.entry).unwrap();
        assert_eq!(tokens[0].caller.kind(), Kind::Write);
        assert_eq!(tokens[0].caller.tenant().unwrap().as_str(), "acme");
        let digest: [u8; 32] = Sha256::digest(made.secret.as_bytes()).into();
        assert_eq!(tokens[0].digest, digest);
        assert_ne!(
            new_token("billing", Kind::Write, None).unwrap().secret,
            made.secret
        );
        assert!(new_token("bad name", Kind::Read, None).is_err());
    }

    /// A token at its bound is refused; finishing a call frees a place.
    #[test]
    fn bounds_refuse_then_free() {
        let limits = Limits {
            requests: 2,
            watches: 1,
        };
        let tokens = parse("t", &entry("a", "read", "s"), limits, |_| None).unwrap();
        let caller = &tokens[0].caller;
        let unary = Rule {
            name: "S/M",
            needs: Kind::Read,
            reach: Extent::Tenant,
            watch: false,
            writes: false,
        };
        let watch = Rule {
            watch: true,
            ..unary
        };
        let first = caller.enter(&unary).unwrap();
        let _second = caller.enter(&unary).unwrap();
        assert!(matches!(
            caller.enter(&unary),
            Err(Refusal::Busy { limit: 2, .. })
        ));
        let _stream = caller.enter(&watch).unwrap();
        assert!(matches!(
            caller.enter(&watch),
            Err(Refusal::Busy { limit: 1, .. })
        ));
        drop(first);
        assert!(caller.enter(&unary).is_ok());
    }

    /// Without tokens only loopback is served, unless `--insecure`.
    #[test]
    fn no_tokens_means_loopback_unless_insecure() {
        let local: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let local6: SocketAddr = "[::1]:50051".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        assert_eq!(exposure(local, false, false), Ok(Exposure::Loopback));
        assert_eq!(exposure(local6, false, false), Ok(Exposure::Loopback));
        assert!(
            exposure(any, false, false)
                .unwrap_err()
                .contains("--insecure")
        );
        assert_eq!(exposure(any, false, true), Ok(Exposure::Insecure));
        assert_eq!(exposure(any, true, false), Ok(Exposure::Tokens));
    }
}
