//! Condition groups' membership rules: CEL expressions over a subject,
//! compiled once when the group is written and evaluated when a subject or
//! the group changes — never on the check path.
//!
//! A condition sees `attributes` (the subject's string attributes, as a
//! map), `id`, `kind` ("user" or "service") and `status` ("active" or
//! "locked"). It matches only when it evaluates to `true`; an expression that
//! cannot be evaluated for a subject (say, it reads an attribute the subject
//! lacks) does not match. Must not know about protobuf or redb.

use std::collections::HashMap;

use cel::{Context, Program, Value};

use crate::model::{Subject, SubjectKind, SubjectStatus};

/// Longest condition text, in bytes.
pub const MAX_CONDITION_LEN: usize = 4096;

/// The variables a condition may read.
const VARIABLES: [&str; 4] = ["attributes", "id", "kind", "status"];

/// A compiled condition.
pub struct Condition {
    /// The expression as written.
    source: String,
    /// Compiled once; executing it allocates, which is why conditions are
    /// evaluated on writes only.
    program: Program,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// Why a condition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// Where and what, e.g. "at line 1, column 12: mismatched input".
    pub message: String,
}

impl Condition {
    /// Compiles a condition, refusing syntax errors (with their position),
    /// unknown variables and over-long text.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        if source.len() > MAX_CONDITION_LEN {
            return Err(ConditionError {
                message: format!("longer than {MAX_CONDITION_LEN} bytes"),
            });
        }
        let program = Program::compile(source).map_err(|errors| ConditionError {
            message: errors
                .errors
                .first()
                .map(|e| format!("at line {}, column {}: {}", e.pos.0, e.pos.1 + 1, e.msg))
                .unwrap_or_else(|| "invalid expression".into()),
        })?;
        let references = program.references();
        if let Some(unknown) = references
            .variables()
            .into_iter()
            .find(|v| !VARIABLES.contains(v))
        {
            return Err(ConditionError {
                message: format!(
                    "unknown variable {unknown:?}; a condition may read {}",
                    VARIABLES.join(", ")
                ),
            });
        }
        Ok(Condition {
            source: source.to_string(),
            program,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `subject` satisfies the condition.
    pub fn matches(&self, subject: &Subject) -> bool {
        let attributes: HashMap<String, String> = subject
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut context = Context::default();
        context.add_variable_from_value("attributes", attributes);
        context.add_variable_from_value("id", subject.id.to_string());
        context.add_variable_from_value(
            "kind",
            match subject.kind {
                SubjectKind::User => "user",
                SubjectKind::Service => "service",
            },
        );
        context.add_variable_from_value(
            "status",
            match subject.status {
                SubjectStatus::Active => "active",
                SubjectStatus::Locked => "locked",
            },
        );
        matches!(self.program.execute(&context), Ok(Value::Bool(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(attrs: &[(&str, &str)]) -> Subject {
        Subject {
            id: "e1".parse().unwrap(),
            kind: SubjectKind::User,
            status: SubjectStatus::Active,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home_scope: None,
        }
    }

    #[test]
    fn membership_follows_attributes() {
        let c = Condition::parse(
            r#"attributes.lifecycle_status in ["employed", "garden_leave", "leave", "terminated"]"#,
        )
        .unwrap();
        assert!(c.matches(&subject(&[("lifecycle_status", "leave")])));
        assert!(!c.matches(&subject(&[("lifecycle_status", "resigned")])));
        assert!(
            !c.matches(&subject(&[])),
            "a missing attribute does not match"
        );
    }

    #[test]
    fn boolean_operators_and_negated_membership() {
        let c = Condition::parse(
            r#"(attributes.department == "HR" || kind == "service") && !(attributes.level in ["intern"])"#,
        )
        .unwrap();
        assert!(c.matches(&subject(&[("department", "HR"), ("level", "senior")])));
        assert!(!c.matches(&subject(&[("department", "HR"), ("level", "intern")])));
        assert!(!c.matches(&subject(&[("department", "IT"), ("level", "senior")])));
    }

    #[test]
    fn errors_name_the_position_and_unknown_variables() {
        let e = Condition::parse(r#"attributes.x == "a" &&"#).unwrap_err();
        assert!(e.message.contains("line 1, column"), "{}", e.message);
        let e = Condition::parse(r#"manager == "bob""#).unwrap_err();
        assert!(
            e.message.contains("unknown variable \"manager\""),
            "{}",
            e.message
        );
    }
}
