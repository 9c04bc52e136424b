//! How records and composite keys become bytes in the store's tables.
//!
//! Values are the model types as JSON, so the file stays self-describing and a
//! new optional field does not need a migration. A value of at least
//! [`COMPRESS_FROM`] bytes of JSON (in practice the changelog's change sets,
//! which list every permission a write changed) is stored as one zstd frame
//! of that JSON: the effects of a bulk import repeat the same few names
//! thousands of times, and compressed they take about a twentieth of the
//! space. Readers tell the two apart by the frame's magic number, which no
//! JSON text begins with, so values written before compression existed
//! (format 1) read unchanged. A change set is encoded in two parts: all but
//! its revision before its commit ([`entry_tail`], the costly part, done
//! while other writes commit), and its revision at the commit ([`entry`]);
//! stored compressed, the two are two zstd frames of one stream, which
//! reads as one text. A membership is stored as its key alone (the
//! group and the member are the key; the value is empty), since the value
//! would repeat the key byte for byte.
//!
//! Keys are plain text chosen to sort in a useful order. This file owns both
//! encodings; it must not name tables or transactions (that is the store's
//! job) nor judge whether a record makes sense (that is the service's).

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use authzd_core::model::{
    Change, Effect, GroupId, Membership, Permission, Place, Principal, Reach, Revision, SubjectId,
    TenantId, Timestamp,
};
use authzd_store::PendingWrite;

use super::StoreError;

pub(super) use authzd_store::keys::{STORE_WIDE, assignment_key, principal_key};

/// The JSON size from which a value is stored compressed. Below it a zstd
/// frame saves little (a subject, a membership or an audit entry of a few
/// hundred bytes) and costs a compression on every write and a
/// decompression on every start-up.
pub(super) const COMPRESS_FROM: usize = 1024;

/// zstd's fastest level: a large write waits for its change set's
/// compression before it commits, and this level already shrinks the
/// changelog of a bulk import about 25-fold.
const LEVEL: i32 = 1;

/// The first bytes of every zstd frame (RFC 8878, section 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Encodes a record as JSON, compressed when it is large.
pub(super) fn encode<T: Serialize>(what: &'static str, record: &T) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(record).map_err(|source| StoreError::Encode { what, source })?;
    if json.len() < COMPRESS_FROM {
        return Ok(json);
    }
    compress(what, &json)
}

/// `bytes` as one zstd frame.
fn compress(what: &'static str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    zstd::bulk::compress(bytes, LEVEL).map_err(|e| StoreError::Encode {
        what,
        source: serde_json::Error::io(e),
    })
}

/// The part of a change set's stored value that does not depend on its
/// revision: its JSON after the revision (`,"tenant":…}`, the revision
/// being the change set's first field), compressed as one zstd frame when
/// it is at least [`COMPRESS_FROM`] bytes. Encoded before the write takes
/// its place in the commit order, so that the commit, which every other
/// write waits behind, only puts bytes in place ([`entry`]).
pub(super) fn entry_tail(write: &PendingWrite) -> Result<Vec<u8>, StoreError> {
    /// A change set without its revision and effects, serialized as
    /// [`ChangeSet`] is (a test holds the two together).
    #[derive(Serialize)]
    struct Head<'a> {
        tenant: &'a Option<TenantId>,
        actor: &'a Option<SubjectId>,
        committed_at: Timestamp,
        changes: &'a [Change],
    }
    let what = "change set";
    let encode_error = |source| StoreError::Encode { what, source };
    let head = Head {
        tenant: &write.tenant,
        actor: &write.actor,
        committed_at: write.committed_at,
        changes: &write.changes,
    };
    let mut json = Vec::with_capacity(256 + write.effects.len() * EFFECT_BYTES);
    serde_json::to_writer(&mut json, &head).map_err(encode_error)?;
    // `{"tenant":…,"changes":[…]}` continues `{"revision":N` once its
    // opening brace is a comma, and goes on with the effects where its
    // closing brace was.
    if let Some(brace) = json.first_mut() {
        *brace = b',';
    }
    json.pop();
    json.extend_from_slice(b",\"effects\":[");
    for (i, effect) in write.effects.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        effect_json(effect, &mut json).map_err(encode_error)?;
    }
    json.extend_from_slice(b"]}");
    if json.len() < COMPRESS_FROM {
        return Ok(json);
    }
    compress(what, &json)
}

/// About the JSON size of one effect, to size a change set's buffer once.
const EFFECT_BYTES: usize = 128;

/// Appends `effect`'s JSON, the text serde_json writes for it, without
/// serde's generic machinery: a group-wide write's change set holds an
/// effect or more per member, and writing them was most of encoding it.
/// Destructured whole, so a new field of [`Effect`] does not compile until
/// it is written here (a test holds the two texts together).
fn effect_json(effect: &Effect, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let Effect {
        tenant,
        subject,
        target,
        permission,
        gained,
        reach,
    } = effect;
    out.extend_from_slice(b"{\"tenant\":");
    json_string(tenant.as_str(), out)?;
    out.extend_from_slice(b",\"subject\":");
    json_string(subject.as_str(), out)?;
    let (place, id) = match target {
        Place::Scope(scope) => (&b",\"target\":{\"scope\":"[..], scope.as_str()),
        Place::Subject(subject) => (&b",\"target\":{\"subject\":"[..], subject.as_str()),
    };
    out.extend_from_slice(place);
    json_string(id, out)?;
    out.extend_from_slice(b"},\"permission\":");
    match permission {
        Permission::All => out.extend_from_slice(b"\"*\""),
        Permission::Specific { resource, verb } => {
            // Names are `[A-Za-z0-9_.-]`: nothing to escape.
            out.push(b'"');
            out.extend_from_slice(resource.as_str().as_bytes());
            out.push(b':');
            out.extend_from_slice(verb.as_str().as_bytes());
            out.push(b'"');
        }
    }
    out.extend_from_slice(match gained {
        true => b",\"gained\":true,\"reach\":",
        false => b",\"gained\":false,\"reach\":",
    });
    out.extend_from_slice(match reach {
        Reach::Subtree => b"\"subtree\"}",
        Reach::Exact => b"\"exact\"}",
    });
    Ok(())
}

/// Appends `s` as a JSON string. Ids hold no control characters but may
/// hold a quote or a backslash; those rare ones are escaped by serde_json
/// itself, so the text is always the one it writes.
fn json_string(s: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < b' ') {
        return serde_json::to_writer(out, s);
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// A change set's stored value as `revision`, from its [`entry_tail`]:
/// the revision's JSON before it, as a zstd frame of its own when the tail
/// is one (a zstd stream of two frames decompresses to their texts one
/// after the other), so the value reads as one change set's JSON.
pub(super) fn entry(tail: &[u8], revision: Revision) -> Result<Vec<u8>, StoreError> {
    let head = format!("{{\"revision\":{}", revision.0);
    let mut value = if tail.starts_with(&ZSTD_MAGIC) {
        compress("change set", head.as_bytes())?
    } else {
        head.into_bytes()
    };
    value.extend_from_slice(tail);
    Ok(value)
}

/// The JSON text of a value written by [`encode`] (or by format 1, which
/// stored JSON only).
pub(super) fn plain<'a>(what: &'static str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, StoreError> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    zstd::stream::decode_all(bytes)
        .map(Cow::Owned)
        .map_err(|e| StoreError::Decode {
            what,
            source: serde_json::Error::io(e),
        })
}

/// Decodes a record written by [`encode`].
pub(super) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    from_json(what, &plain(what, bytes)?)
}

/// Decodes a record's JSON text.
pub(super) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    json: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(json).map_err(|source| StoreError::Decode { what, source })
}

/// The value stored for a membership: nothing, as its key says it all.
pub(super) const MEMBERSHIP_VALUE: &[u8] = &[];

/// The membership of a row of the memberships table: from the key when the
/// value is empty (format 2), from the value's JSON otherwise (format 1).
pub(super) fn membership(
    group: &str,
    member: &str,
    value: &[u8],
) -> Result<Membership, StoreError> {
    if !value.is_empty() {
        return decode("membership", value);
    }
    let invalid = |source| StoreError::InvalidKey {
        what: "membership",
        source,
    };
    let member = match member.split_once(':') {
        Some(("subject", id)) => Principal::Subject(SubjectId::try_from(id).map_err(invalid)?),
        Some(("group", id)) => Principal::Group(GroupId::try_from(id).map_err(invalid)?),
        _ => {
            return Err(StoreError::Decode {
                what: "membership",
                source: serde::de::Error::custom(format!(
                    "member key {member:?} names neither a subject nor a group"
                )),
            });
        }
    };
    Ok(Membership {
        group: GroupId::try_from(group).map_err(invalid)?,
        member,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use authzd_core::model::{
        Assignment, AssignmentKey, AuditEntry, AuditKey, AuditOutcome, InvalidValue, Origin,
        Revision, RoleId, ScopeId, Subject, Target, Timestamp,
    };

    fn akey(
        role: &str,
        subject: &str,
        scope: &str,
    ) -> Result<AssignmentKey, Box<dyn std::error::Error>> {
        Ok(AssignmentKey {
            role: RoleId::try_from(role)?,
            principal: Principal::Subject(SubjectId::try_from(subject)?),
            target: Target::Scope(ScopeId::try_from(scope)?),
        })
    }

    #[test]
    fn records_round_trip_through_json() -> Result<(), Box<dyn std::error::Error>> {
        let subject = Subject {
            id: SubjectId::try_from("alice")?,
            kind: authzd_core::model::SubjectKind::User,
            status: authzd_core::model::SubjectStatus::Locked,
            attributes: [("department".to_owned(), "HR".to_owned())].into(),
            home_scope: Some(ScopeId::try_from("unit-1")?),
        };
        let back: Subject = decode("subject", &encode("subject", &subject)?)?;
        assert_eq!(back, subject);

        let assignment = Assignment {
            key: akey("editor", "alice", "root")?,
            expires_at: Some(Timestamp(42)),
        };
        let back: Assignment = decode("assignment", &encode("assignment", &assignment)?)?;
        assert_eq!(back, assignment);
        Ok(())
    }

    /// A refusal's audit entry round-trips with its reason code, and one
    /// stored before refusals had codes (the outcome a bare message) still
    /// reads, without one.
    #[test]
    fn audit_outcomes_old_and_new_decode() -> Result<(), Box<dyn std::error::Error>> {
        let entry = AuditEntry {
            key: AuditKey {
                at: Timestamp(7),
                seq: 3,
            },
            tenant: None,
            actor: Some(SubjectId::try_from("bob")?),
            origin: Origin::default(),
            concerned: Vec::new(),
            more_concerned: false,
            outcome: AuditOutcome::Denied {
                message: "no".into(),
                reason: Some("NOT_MANAGER".into()),
            },
        };
        let bytes = encode("audit entry", &entry)?;
        let back: AuditEntry = decode("audit entry", &bytes)?;
        assert_eq!(back, entry);

        let text = String::from_utf8(bytes)?;
        let new_form = r#""outcome":{"denied":{"message":"no","reason":"NOT_MANAGER"}}"#;
        assert!(text.contains(new_form), "{text}");
        let old = text.replace(new_form, r#""outcome":{"denied":"no"}"#);
        let back: AuditEntry = decode("audit entry", old.as_bytes())?;
        let expected = AuditOutcome::Denied {
            message: "no".into(),
            reason: None,
        };
        assert_eq!(back.outcome, expected);
        let committed = text.replace(new_form, r#""outcome":{"committed":12}"#);
        let back: AuditEntry = decode("audit entry", committed.as_bytes())?;
        assert_eq!(back.outcome, AuditOutcome::Committed(Revision(12)));
        Ok(())
    }

    /// Large values are stored compressed and small ones as JSON, and both
    /// read back; so does a large value stored as JSON (format 1).
    #[test]
    fn large_values_are_compressed() -> Result<(), Box<dyn std::error::Error>> {
        let small = Subject {
            id: SubjectId::try_from("alice")?,
            kind: authzd_core::model::SubjectKind::User,
            status: authzd_core::model::SubjectStatus::Active,
            attributes: Default::default(),
            home_scope: None,
        };
        let small_bytes = encode("subject", &small)?;
        assert_eq!(small_bytes, serde_json::to_vec(&small)?);
        let large: Vec<Subject> = (0..100)
            .map(|i| {
                let mut s = small.clone();
                s.id = SubjectId::try_from(format!("user-{i:03}"))?;
                Ok(s)
            })
            .collect::<Result<_, InvalidValue>>()?;
        let json = serde_json::to_vec(&large)?;
        let bytes = encode("subjects", &large)?;
        assert!(bytes.starts_with(&ZSTD_MAGIC));
        assert!(
            bytes.len() * 5 < json.len(),
            "{} of {}",
            bytes.len(),
            json.len()
        );
        assert_eq!(decode::<Vec<Subject>>("subjects", &bytes)?, large);
        assert_eq!(decode::<Vec<Subject>>("subjects", &json)?, large);
        assert_eq!(plain("subjects", &bytes)?.as_ref(), json.as_slice());
        Ok(())
    }

    /// A change set encoded in two parts (all but its revision ahead of the
    /// commit, the revision at it) is stored as encoding it whole stores
    /// it: the same JSON text, compressed from the same size on, decoding
    /// to the change set with the revision it was given.
    #[test]
    fn a_change_set_encoded_ahead_reads_as_one() -> Result<(), Box<dyn std::error::Error>> {
        let effect = |i: usize| -> Result<Effect, Box<dyn std::error::Error>> {
            Ok(Effect {
                tenant: TenantId::try_from("acme")?,
                subject: SubjectId::try_from(format!("user-{i:05}"))?,
                target: authzd_core::model::Place::Scope(ScopeId::root()),
                permission: "reports:read".parse()?,
                gained: i % 2 == 0,
                reach: authzd_core::model::Reach::Subtree,
            })
        };
        for (effects, compressed) in [(0, false), (2_000, true)] {
            let write = PendingWrite {
                tenant: Some(TenantId::try_from("acme")?),
                actor: Some(SubjectId::try_from("admin")?),
                committed_at: Timestamp(1_700_000_000_000_000_000),
                changes: vec![Change::RoleUnassigned(akey("editor", "alice", "root")?)],
                effects: (0..effects).map(effect).collect::<Result<_, _>>()?,
                expected_revision: None,
                idempotency_key: None,
                origin: Origin::default(),
                revision: None,
                prepared: None,
            };
            let revision = Revision(18_446_744_073_709_551_615);
            let whole = encode("change set", &write.entry(revision))?;
            let parts = entry(&entry_tail(&write)?, revision)?;
            assert_eq!(parts.starts_with(&ZSTD_MAGIC), compressed);
            assert_eq!(plain("change set", &parts)?, plain("change set", &whole)?);
            let back: authzd_core::model::ChangeSet = decode("change set", &parts)?;
            assert_eq!(back, write.entry(revision));
        }
        Ok(())
    }

    /// An effect's JSON, written by hand, is the text serde_json writes
    /// for it, whatever its ids hold (quotes, backslashes, other scripts)
    /// and for every target, permission, gain and reach.
    #[test]
    fn effects_are_written_as_serde_json_writes_them() -> Result<(), Box<dyn std::error::Error>> {
        let mut effects = Vec::new();
        for (i, id) in ["user-1", "a\"b", "c\\d", "ü€日本", "x:y/z{}"]
            .iter()
            .enumerate()
        {
            let targets = [
                authzd_core::model::Place::Scope(ScopeId::try_from(*id)?),
                authzd_core::model::Place::Subject(SubjectId::try_from(*id)?),
            ];
            for (j, target) in targets.into_iter().enumerate() {
                effects.push(Effect {
                    tenant: TenantId::try_from(*id)?,
                    subject: SubjectId::try_from(format!("{id}-{i}"))?,
                    target,
                    permission: if j == 0 { "*" } else { "doc.v2:read_all" }.parse()?,
                    gained: (i + j) % 2 == 0,
                    reach: if i % 2 == 0 {
                        authzd_core::model::Reach::Subtree
                    } else {
                        authzd_core::model::Reach::Exact
                    },
                });
            }
        }
        for effect in &effects {
            let mut out = Vec::new();
            effect_json(effect, &mut out)?;
            assert_eq!(String::from_utf8(out)?, serde_json::to_string(effect)?);
        }
        Ok(())
    }

    /// A membership reads from its key when its value is empty, and from
    /// its JSON value when it has one (format 1).
    #[test]
    fn memberships_read_from_their_key() -> Result<(), Box<dyn std::error::Error>> {
        for member in [
            Principal::Subject(SubjectId::try_from("a:b")?),
            Principal::Group(GroupId::try_from("team")?),
        ] {
            let record = Membership {
                group: GroupId::try_from("staff")?,
                member,
            };
            let key = principal_key(&record.member);
            assert_eq!(membership("staff", &key, MEMBERSHIP_VALUE)?, record);
            let json = serde_json::to_vec(&record)?;
            assert_eq!(membership("other", "ignored", &json)?, record);
        }
        let err = membership("staff", "robot:x", MEMBERSHIP_VALUE).err();
        assert!(matches!(err, Some(StoreError::Decode { .. })), "{err:?}");
        let err = membership("staff", "subject:", MEMBERSHIP_VALUE).err();
        assert!(
            matches!(err, Some(StoreError::InvalidKey { .. })),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn decoding_garbage_is_an_error_naming_the_record() {
        let err = decode::<Subject>("subject", b"{not json").err();
        assert!(
            matches!(
                err,
                Some(StoreError::Decode {
                    what: "subject",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn principal_keys_keep_subjects_and_groups_apart() -> Result<(), Box<dyn std::error::Error>> {
        let subject = Principal::Subject(SubjectId::try_from("x")?);
        let group = Principal::Group(GroupId::try_from("x")?);
        assert_ne!(principal_key(&subject), principal_key(&group));
        Ok(())
    }

    #[test]
    fn assignment_keys_sort_by_role_then_principal_then_target()
    -> Result<(), Box<dyn std::error::Error>> {
        // A role that is a prefix of another must sort entirely before it.
        let keys = [
            akey("a", "zed", "root")?,
            akey("a", "zed", "unit")?,
            akey("ab", "amy", "root")?,
            akey("b", "amy", "root")?,
        ];
        let encoded: Vec<String> = keys.iter().map(assignment_key).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        Ok(())
    }

    #[test]
    fn distinct_assignment_keys_encode_distinctly() -> Result<(), Box<dyn std::error::Error>> {
        let a = akey("r", "s", "root")?;
        let mut b = a.clone();
        b.target = Target::Population(GroupId::try_from("root")?);
        let mut c = a.clone();
        c.principal = Principal::Group(GroupId::try_from("s")?);
        assert_ne!(assignment_key(&a), assignment_key(&b));
        assert_ne!(assignment_key(&a), assignment_key(&c));
        assert_ne!(assignment_key(&b), assignment_key(&c));
        Ok(())
    }
}
