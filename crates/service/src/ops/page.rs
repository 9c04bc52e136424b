//! The one paging scheme of every listing: a [`PageRequest`] in, a
//! [`Page`] out, and between the two a page token the server verifies.
//!
//! A listing is ordered by a key (an id, a member, an assignment's key, an
//! audit entry's position), and a page continues *after* the key its
//! predecessor ended on, the `Cursor`: an item written or deleted
//! between two pages moves nothing else, so paging never skips or repeats
//! an item that stays (no integer offsets).
//!
//! A token is bound to the `Listing` that issued it: the use case that
//! lists, the tenant, and every filter that shapes the listing. It carries
//! a version, the cursor and a digest (SHA-256, cut to 16 bytes) over the
//! listing and the cursor, as unpadded base64url. A token edited, cut, or
//! issued by another list, tenant or query fails the digest and is
//! INVALID_ARGUMENT naming `page_token`, never a page from somewhere else.
//! The digest is keyed by nothing secret, so a token stays good across a
//! restart and on every node serving the same data; it is a check against
//! mistakes and edits, not a secret: whoever builds a valid token could as
//! well have paged to its position.
//!
//! Must not know how an edge carries the token (a field, a query
//! parameter): errors name `page_size` and `page_token`, and an edge that
//! nests them renames them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::UseCase;
use crate::Error;
use authzd_core::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGE_TOKEN_LEN};
use authzd_core::model::{
    AssignmentKey, AuditKey, GroupId, InvalidValue, Principal, ScopeId, SubjectId, Target,
    Timestamp,
};

/// How much of a listing the caller asks for, as it sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page; 0 means the default.
    pub size: u32,
    /// The previous page's [`Page::next`]; empty for the first page.
    pub token: String,
}

/// One page of a listing, in the listing's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page; `None` on the last page.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The same page with each item converted (an edge's own types).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// The version of the token scheme: the first byte of every token, and
/// part of what the digest covers.
const VERSION: u8 = 1;

/// Bytes of the digest a token carries.
const DIGEST_LEN: usize = 16;

/// What separates this digest from any other SHA-256 of the same bytes.
const DOMAIN: &[u8] = b"authzd page token";

/// Most parts a cursor has (an assignment's key: role, principal kind and
/// id, target kind and id).
const MAX_CURSOR_PARTS: usize = 5;

/// Where a listing continues: the key of the last item a page held (for
/// the audit trail, the last entry examined), as the text of its parts in
/// the listing's key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    parts: Vec<String>,
}

/// The refusal of a token the listing did not issue.
fn foreign() -> Error {
    Error::InvalidArgument {
        field: "page_token".into(),
        reason: "not a token this listing issued for this tenant and these filters; pass the \
                 next_page_token of the previous page unchanged, with the same filters"
            .into(),
    }
}

impl Cursor {
    /// A one-part key: an id.
    pub(crate) fn id(id: &str) -> Cursor {
        Cursor {
            parts: vec![id.to_string()],
        }
    }

    /// The one part of an id's key.
    pub(crate) fn as_id(&self) -> Result<&str, Error> {
        match self.parts.as_slice() {
            [id] => Ok(id),
            _ => Err(foreign()),
        }
    }

    /// A member's key: its kind, then its id (subjects sort before groups,
    /// as [`Principal`] orders them).
    pub(crate) fn principal(p: &Principal) -> Cursor {
        let (kind, id) = principal_parts(p);
        Cursor {
            parts: vec![kind.to_string(), id.to_string()],
        }
    }

    /// The member a [`Cursor::principal`] key names.
    pub(crate) fn to_principal(&self) -> Result<Principal, Error> {
        match self.parts.as_slice() {
            [kind, id] => parse_principal(kind, id),
            _ => Err(foreign()),
        }
    }

    /// An assignment's key: role, principal, target.
    pub(crate) fn assignment(k: &AssignmentKey) -> Cursor {
        let (principal_kind, principal) = principal_parts(&k.principal);
        let (target_kind, target) = target_parts(&k.target);
        Cursor {
            parts: vec![
                k.role.to_string(),
                principal_kind.to_string(),
                principal.to_string(),
                target_kind.to_string(),
                target.to_string(),
            ],
        }
    }

    /// The assignment key a [`Cursor::assignment`] key names.
    pub(crate) fn to_assignment(&self) -> Result<AssignmentKey, Error> {
        match self.parts.as_slice() {
            [role, principal_kind, principal, target_kind, target] => Ok(AssignmentKey {
                role: role.parse().map_err(|_: InvalidValue| foreign())?,
                principal: parse_principal(principal_kind, principal)?,
                target: parse_target(target_kind, target)?,
            }),
            _ => Err(foreign()),
        }
    }

    /// An audit entry's position: its time in nanoseconds, its sequence
    /// number.
    pub(crate) fn audit(k: AuditKey) -> Cursor {
        Cursor {
            parts: vec![k.at.0.to_string(), k.seq.to_string()],
        }
    }

    /// The position a [`Cursor::audit`] key names.
    pub(crate) fn to_audit(&self) -> Result<AuditKey, Error> {
        match self.parts.as_slice() {
            [at, seq] => Ok(AuditKey {
                at: Timestamp(at.parse().map_err(|_| foreign())?),
                seq: seq.parse().map_err(|_| foreign())?,
            }),
            _ => Err(foreign()),
        }
    }

    /// The cursor as bytes: each part's length (two bytes, big-endian),
    /// then the part.
    fn encode(&self, out: &mut Vec<u8>) {
        for part in &self.parts {
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes().get(..usize::from(len)).unwrap_or_default());
        }
    }

    /// The cursor of [`Cursor::encode`]'s bytes, all of them.
    fn decode(mut bytes: &[u8]) -> Option<Cursor> {
        let mut parts = Vec::new();
        while !bytes.is_empty() {
            if parts.len() == MAX_CURSOR_PARTS {
                return None;
            }
            let (len, rest) = bytes.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            let part = rest.get(..len)?;
            parts.push(String::from_utf8(part.to_vec()).ok()?);
            bytes = rest.get(len..)?;
        }
        (!parts.is_empty()).then_some(Cursor { parts })
    }
}

/// A principal's kind and id, as cursors and filters write them.
fn principal_parts(p: &Principal) -> (&'static str, &str) {
    match p {
        Principal::Subject(s) => ("subject", s.as_str()),
        Principal::Group(g) => ("group", g.as_str()),
    }
}

fn parse_principal(kind: &str, id: &str) -> Result<Principal, Error> {
    match kind {
        "subject" => Ok(Principal::Subject(
            SubjectId::try_from(id).map_err(|_| foreign())?,
        )),
        "group" => Ok(Principal::Group(
            GroupId::try_from(id).map_err(|_| foreign())?,
        )),
        _ => Err(foreign()),
    }
}

/// A target's kind and id, as cursors and filters write them.
fn target_parts(t: &Target) -> (&'static str, &str) {
    match t {
        Target::Scope(s) => ("scope", s.as_str()),
        Target::Population(g) => ("population", g.as_str()),
    }
}

fn parse_target(kind: &str, id: &str) -> Result<Target, Error> {
    match kind {
        "scope" => Ok(Target::Scope(ScopeId::try_from(id).map_err(|_| foreign())?)),
        "population" => Ok(Target::Population(
            GroupId::try_from(id).map_err(|_| foreign())?,
        )),
        _ => Err(foreign()),
    }
}

/// A principal as a filter's value (`subject:alice`).
pub(crate) fn principal_text(p: &Principal) -> String {
    let (kind, id) = principal_parts(p);
    format!("{kind}:{id}")
}

/// A target as a filter's value (`scope:eu`).
pub(crate) fn target_text(t: &Target) -> String {
    let (kind, id) = target_parts(t);
    format!("{kind}:{id}")
}

/// What a page token is bound to: the use case that lists, the tenant,
/// and every filter that shapes the listing, in a canonical encoding
/// (each string with its length, an absent value distinct from an empty
/// one) fed to the digest as it is built.
#[derive(Clone)]
pub(crate) struct Listing {
    digest: Sha256,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing").finish_non_exhaustive()
    }
}

impl Listing {
    /// The listing of `use_case` in `tenant` (`None`: a listing across
    /// tenants).
    pub(crate) fn new(use_case: UseCase, tenant: Option<&str>) -> Listing {
        let mut listing = Listing {
            digest: Sha256::new(),
        };
        listing.digest.update(DOMAIN);
        listing.digest.update([VERSION]);
        listing.text(use_case.name());
        listing.value(tenant);
        listing
    }

    /// The listing narrowed by the filter `name` (`None`: not given).
    pub(crate) fn filter(mut self, name: &str, value: Option<&str>) -> Listing {
        self.text(name);
        self.value(value);
        self
    }

    fn text(&mut self, text: &str) {
        let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
        self.digest.update(len.to_be_bytes());
        self.digest.update(text.as_bytes());
    }

    fn value(&mut self, value: Option<&str>) {
        match value {
            None => self.digest.update([0]),
            Some(text) => {
                self.digest.update([1]);
                self.text(text);
            }
        }
    }

    /// The digest of this listing and a cursor's bytes.
    fn seal(&self, cursor: &[u8]) -> [u8; DIGEST_LEN] {
        let mut digest = self.digest.clone();
        digest.update(cursor);
        let full: [u8; 32] = digest.finalize().into();
        let mut out = [0; DIGEST_LEN];
        out.copy_from_slice(&full[..DIGEST_LEN]);
        out
    }

    /// The token that continues this listing after `cursor`.
    fn token(&self, cursor: &Cursor) -> String {
        let mut body = Vec::new();
        cursor.encode(&mut body);
        let mut bytes = Vec::with_capacity(1 + DIGEST_LEN + body.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.seal(&body));
        bytes.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor of a token this listing issued; anything else is
    /// refused.
    fn open(&self, token: &str) -> Result<Cursor, Error> {
        if token.len() > MAX_PAGE_TOKEN_LEN {
            return Err(foreign());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| foreign())?;
        let (&version, rest) = bytes.split_first().ok_or_else(foreign)?;
        let (digest, body) = rest.split_first_chunk::<DIGEST_LEN>().ok_or_else(foreign)?;
        if version != VERSION || *digest != self.seal(body) {
            return Err(foreign());
        }
        Cursor::decode(body).ok_or_else(foreign)
    }
}

/// A listing's page request, checked: the size within bounds and the
/// token one the listing issued.
#[derive(Debug)]
pub(crate) struct Pager {
    listing: Listing,
    size: usize,
    after: Option<Cursor>,
}

impl Pager {
    /// Checks `request` against `listing`.
    pub(crate) fn new(listing: Listing, request: &PageRequest) -> Result<Pager, Error> {
        let size = usize::try_from(request.size).unwrap_or(usize::MAX);
        if size > MAX_PAGE_SIZE {
            return Err(Error::InvalidArgument {
                field: "page_size".into(),
                reason: format!("at most {MAX_PAGE_SIZE}"),
            });
        }
        let after = match request.token.as_str() {
            "" => None,
            token => Some(listing.open(token)?),
        };
        Ok(Pager {
            listing,
            size: if size == 0 { DEFAULT_PAGE_SIZE } else { size },
            after,
        })
    }

    /// Where the page starts: after this key (`None`: at the beginning).
    pub(crate) fn after(&self) -> Option<&Cursor> {
        self.after.as_ref()
    }

    /// How many items the page holds at most.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The page of `items` (the listing from just after the cursor on, in
    /// key order): at most [`Pager::size`] of them, with a token when one
    /// more follows. `key` gives an item's cursor.
    pub(crate) fn page<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> Cursor,
    ) -> Page<T> {
        let mut items = items.into_iter();
        let taken: Vec<T> = items.by_ref().take(self.size).collect();
        let more = taken.len() == self.size && items.next().is_some();
        let next = if more { taken.last().map(key) } else { None };
        self.ending(taken, next)
    }

    /// A page whose source said where the next one starts (`None`: this is
    /// the last).
    pub(crate) fn ending<T>(&self, items: Vec<T>, next: Option<Cursor>) -> Page<T> {
        Page {
            items,
            next: next.map(|cursor| self.listing.token(&cursor)),
        }
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

    fn listing() -> Listing {
        Listing::new(UseCase::ListSubjects, Some("acme"))
    }

    fn is_foreign(result: Result<Cursor, Error>) -> bool {
        matches!(result, Err(Error::InvalidArgument { field, .. }) if field == "page_token")
    }

    /// A token opens to the cursor it was made from, with the same listing
    /// built again (another process, another node).
    #[test]
    fn a_token_round_trips() {
        for cursor in [
            Cursor::id("alice"),
            Cursor::principal(&Principal::Group("g".parse().unwrap())),
            Cursor::audit(AuditKey {
                at: Timestamp(-5),
                seq: u64::MAX,
            }),
        ] {
            let token = listing().token(&cursor);
            assert_eq!(listing().open(&token).unwrap(), cursor);
        }
        let key = AssignmentKey {
            role: "editor".parse().unwrap(),
            principal: Principal::Subject("alice".parse().unwrap()),
            target: Target::Population("g".parse().unwrap()),
        };
        let token = listing().token(&Cursor::assignment(&key));
        let back = listing().open(&token).unwrap().to_assignment().unwrap();
        assert_eq!(back, key);
    }

    /// Every byte of a token matters: each single edit, and each cut, is
    /// refused.
    #[test]
    fn edited_and_cut_tokens_are_refused() {
        let token = listing().token(&Cursor::id("s17030"));
        for i in 0..token.len() {
            let mut edited = token.clone().into_bytes();
            edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap();
            assert!(is_foreign(listing().open(&edited)), "{edited}");
            assert!(is_foreign(listing().open(&token[..i])), "cut at {i}");
        }
        let mut longer = token.clone();
        longer.push('A');
        assert!(is_foreign(listing().open(&longer)));
        assert!(is_foreign(
            listing().open(&"A".repeat(MAX_PAGE_TOKEN_LEN + 1))
        ));
    }

    /// A token opens only in the listing that issued it: the same list in
    /// the same tenant with the same filters.
    #[test]
    fn a_token_is_bound_to_its_list_tenant_and_query() {
        let cursor = Cursor::id("alice");
        let token = listing().token(&cursor);
        let others = [
            Listing::new(UseCase::ListGroups, Some("acme")),
            Listing::new(UseCase::ListSubjects, Some("globex")),
            Listing::new(UseCase::ListSubjects, None),
            listing().filter("role", Some("editor")),
            listing().filter("role", None),
        ];
        for other in others {
            assert!(is_foreign(other.open(&token)));
        }
        let filtered = listing().filter("role", Some("editor"));
        let token = filtered.token(&cursor);
        assert!(is_foreign(
            listing().filter("role", Some("viewer")).open(&token)
        ));
        assert!(is_foreign(listing().filter("role", Some("")).open(&token)));
        assert_eq!(filtered.open(&token).unwrap(), cursor);
    }

    /// A page takes at most its size and issues a token only when another
    /// item follows; sizes are bounded.
    #[test]
    fn pages_end_exactly() {
        let request = PageRequest {
            size: 2,
            token: String::new(),
        };
        let pager = Pager::new(listing(), &request).unwrap();
        let page = pager.page(["a", "b", "c"], |s| Cursor::id(s));
        assert_eq!(page.items, ["a", "b"]);
        let next = page.next.unwrap();
        let pager = Pager::new(
            listing(),
            &PageRequest {
                size: 2,
                token: next,
            },
        )
        .unwrap();
        assert_eq!(pager.after().unwrap().as_id().unwrap(), "b");
        let last = pager.page(["c"], |s| Cursor::id(s));
        assert_eq!((last.items, last.next), (vec!["c"], None));
        let exact = Pager::new(listing(), &request)
            .unwrap()
            .page(["a", "b"], |s| Cursor::id(s));
        assert_eq!(exact.next, None);
        let too_big = PageRequest {
            size: 1001,
            token: String::new(),
        };
        assert!(matches!(
            Pager::new(listing(), &too_big),
            Err(Error::InvalidArgument { field, .. }) if field == "page_size"
        ));
        assert_eq!(
            Pager::new(listing(), &PageRequest::default())
                .unwrap()
                .size(),
            DEFAULT_PAGE_SIZE
        );
    }
}
