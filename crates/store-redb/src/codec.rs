//! How records and composite keys become bytes in the store's tables.
//!
//! Values are the model types as JSON, so the file stays self-describing and a
//! new optional field does not need a migration. Keys are plain text chosen to
//! sort in a useful order. This file owns both encodings; it must not name
//! tables or transactions (that is the store's job) nor judge whether a record
//! makes sense (that is the service's).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

pub(super) use authzd_store::keys::{STORE_WIDE, assignment_key, principal_key};

/// Encodes a record as JSON.
pub(super) fn encode<T: Serialize>(what: &'static str, record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|source| StoreError::Encode { what, source })
}

/// Decodes a record written by [`encode`].
pub(super) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use authzd_core::model::{
        Assignment, AssignmentKey, AuditEntry, AuditKey, AuditOutcome, GroupId, Origin, Principal,
        Revision, RoleId, ScopeId, Subject, SubjectId, Target, Timestamp,
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
