//! The web console's sign-in sessions: a token given once at sign-in is
//! kept here, server-side, under a random id the browser holds in an
//! HttpOnly, SameSite=Strict cookie, so that no script of the page (nor
//! `localStorage`) ever holds the secret.
//!
//! Bounded: at most [`MAX_SESSIONS`] at a time (the least recently used
//! one goes when a new one needs its place), each ending after
//! [`IDLE_TIMEOUT`] unused or [`MAX_LIFETIME`] after sign-in, whichever
//! comes first. Ids are 32 bytes from the operating system's CSPRNG.
//! Must not decide what a token may do: every call made with a session's
//! token goes through the guard like any other.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most sessions held at once.
pub const MAX_SESSIONS: usize = 1024;

/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A session ends this long after sign-in, used or not.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The cookie that carries a session's id.
pub const COOKIE: &str = "authzd_session";

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The operating system gave no randomness for the id.
    #[error("no randomness from the system: {0}")]
    Random(String),
}

struct Session {
    /// The `authorization` header value its calls carry.
    authorization: String,
    opened: Instant,
    used: Instant,
    /// When it was last used, in the order of uses (two uses can share an
    /// `Instant`): the least recently used session is the one to go.
    tick: u64,
}

/// The sessions of one HTTP listener.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    sessions: HashMap<String, Session>,
    ticks: u64,
}

impl Held {
    fn tick(&mut self) -> u64 {
        self.ticks = self.ticks.wrapping_add(1);
        self.ticks
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    /// Opens a session for `secret`; its id.
    pub fn open(&self, secret: &str) -> Result<String, SessionError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let tick = held.tick();
        held.sessions.retain(|_, s| alive(s, now));
        if held.sessions.len() >= MAX_SESSIONS {
            let oldest = held
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.tick)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                held.sessions.remove(&oldest);
            }
        }
        held.sessions.insert(
            id.clone(),
            Session {
                authorization: format!("Bearer {secret}"),
                opened: now,
                used: now,
                tick,
            },
        );
        Ok(id)
    }

    /// The `authorization` value of the live session `id`, marking it used.
    pub fn authorization(&self, id: &str) -> Option<String> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let tick = held.tick();
        match held.sessions.get_mut(id) {
            Some(s) if alive(s, now) => {
                s.used = now;
                s.tick = tick;
                Some(s.authorization.clone())
            }
            Some(_) => {
                held.sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` (signing out).
    pub fn close(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sessions
            .remove(id);
    }

    /// How many sessions are held (ended ones not yet swept included).
    pub fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sessions
            .len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.used) < IDLE_TIMEOUT && now.duration_since(s.opened) < MAX_LIFETIME
}

/// The session id the `cookie` header values carry, if any.
pub fn cookie_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "unit tests: a failed expectation is a failed test"
    )]
    use super::*;

    /// Ids are fresh and random-looking, sessions answer with their token,
    /// and a closed session is gone.
    #[test]
    fn open_use_close() {
        let sessions = Sessions::default();
        let a = sessions.open("one").unwrap();
        let b = sessions.open("two").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.authorization(&a).unwrap(), "Bearer one");
        sessions.close(&a);
        assert!(sessions.authorization(&a).is_none());
        assert_eq!(sessions.authorization(&b).unwrap(), "Bearer two");
    }

    /// The count is bounded: the least recently used session gives way.
    #[test]
    fn bounded() {
        let sessions = Sessions::default();
        let first = sessions.open("first").unwrap();
        let second = sessions.open("second").unwrap();
        // The first is used after the second: the second is now the
        // least recently used.
        assert!(sessions.authorization(&first).is_some());
        for i in 0..MAX_SESSIONS - 1 {
            sessions.open(&format!("s{i}")).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.authorization(&second).is_none());
        assert!(sessions.authorization(&first).is_some());
    }

    /// Only a well-formed id is taken from the cookie header.
    #[test]
    fn cookie() {
        let id = "ab".repeat(32);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap(),
        );
        assert_eq!(cookie_id(&headers).unwrap(), id);
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("authzd_session=short"),
        );
        assert!(cookie_id(&headers).is_none());
    }
}
