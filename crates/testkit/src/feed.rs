//! Shared by the feed tests over gRPC: a subscriber's folded copy of every
//! picture, a deterministic pseudo-random source, and random writes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test helper: a failed expectation is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};

use authzd_server::api::pb;

use crate::Rng;

/// A subscriber's copy of the pictures: (subject, target) → permissions,
/// where the target is a scope id or `subject:<id>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Folded(pub BTreeMap<(String, String), BTreeSet<String>>, pub usize);

/// The target of a permission change, as folded.
pub fn target_of(c: &pb::PermissionChange) -> String {
    if c.scope.is_empty() {
        format!("subject:{}", c.target_subject)
    } else {
        c.scope.clone()
    }
}

impl Folded {
    /// Applies a message's permission changes; panics on a gain of what is
    /// held or a loss of what is not (a change twice, or one missing).
    pub fn apply(&mut self, m: &pb::WatchResponse) {
        self.1 += m.permission_changes.len();
        for c in &m.permission_changes {
            let set = self.0.entry((c.subject.clone(), target_of(c))).or_default();
            if c.gained {
                assert!(
                    set.insert(c.permission.clone()),
                    "r{}: gained what was held: {c:?}",
                    m.revision
                );
            } else {
                assert!(
                    set.remove(&c.permission),
                    "r{}: lost what was not held: {c:?}",
                    m.revision
                );
            }
        }
        self.0.retain(|_, s| !s.is_empty());
    }

    /// The scope-target part of one subject's picture.
    pub fn scopes_of(&self, subject: &str) -> BTreeMap<String, BTreeSet<String>> {
        self.0
            .iter()
            .filter(|((s, t), _)| s == subject && !t.starts_with("subject:"))
            .map(|((_, t), p)| (t.clone(), p.clone()))
            .collect()
    }
}

/// The subjects [`Writer::seed`] creates and the writes pick from.
pub const SUBJECTS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];
/// The groups the writes pick from; g1 is nested in g0 by the seed.
pub const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
/// The scopes the writes pick from: the root, then a → b → c.
pub const SCOPES: [&str; 4] = ["root", "a", "b", "c"];
/// The roles the writes assign: the schemas' builtin ones and the custom
/// role the seed creates.
pub const ROLES: [&str; 6] = ["viewer", "editor", "approver", "admin", "inviter", "custom"];
/// The permissions the custom role's grants and `requires` pick from.
pub const PERMISSIONS: [&str; 7] = [
    "document:read",
    "document:edit",
    "document:manage",
    "comment:edit",
    "approval:approve",
    "document:publish",
    "users:invite",
];
/// The resource types the writes switch off and on for the tenant.
pub const MODULES: [&str; 3] = ["comment", "approval", "users"];
/// Two schemas over the same permissions whose builtin roles differ (grants
/// and `requires`), so switching between them changes pictures everywhere.
pub const SCHEMA_A: &str = include_str!("../fixtures/feed_schema_a.toml");
/// The second of the two schemas; see [`SCHEMA_A`].
pub const SCHEMA_B: &str = include_str!("../fixtures/feed_schema_b.toml");

/// Makes random writes of every kind to one tenant over gRPC.
pub struct Writer {
    /// The server the writes go to.
    pub channel: tonic::transport::Channel,
    /// The tenant written.
    pub tenant: String,
}

fn principal(rng: &mut Rng) -> Option<pb::Principal> {
    let kind = if rng.one_in(3) {
        pb::principal::Kind::Group(rng.pick(&GROUPS).into())
    } else {
        pb::principal::Kind::Subject(rng.pick(&SUBJECTS).into())
    };
    Some(pb::Principal { kind: Some(kind) })
}

fn target(rng: &mut Rng) -> Option<pb::Target> {
    let kind = if rng.one_in(4) {
        pb::target::Kind::Population(rng.pick(&GROUPS).into())
    } else {
        pb::target::Kind::Scope(rng.pick(&SCOPES).into())
    };
    Some(pb::Target { kind: Some(kind) })
}

fn role_body(rng: &mut Rng) -> pb::Role {
    let grants = (0..1 + rng.below(2))
        .map(|_| pb::Grant {
            permission: rng.pick(&PERMISSIONS).into(),
            scopes: if rng.one_in(4) {
                vec![rng.pick(&SCOPES[1..]).into()]
            } else {
                vec![]
            },
        })
        .collect();
    pb::Role {
        id: "custom".into(),
        title: "custom".into(),
        grants,
        requires: if rng.one_in(3) {
            vec![rng.pick(&PERMISSIONS[..3]).into()]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

/// A random batch of one to `most` membership operations over the
/// seeded records: assignments, unassignments, members added (some are
/// refused: a cycle, a rule of a role class).
pub fn membership_batch(rng: &mut Rng, most: usize) -> Vec<pb::MembershipOperation> {
    use pb::membership_operation::Operation as Op;
    (0..1 + rng.below(most))
        .map(|_| {
            let op = match rng.below(4) {
                0 | 1 => Op::AssignRole(pb::AssignRole {
                    role: rng.pick(&ROLES).into(),
                    principal: principal(rng),
                    target: target(rng),
                    expires_at: None,
                    precondition: 0,
                }),
                2 => Op::UnassignRole(pb::UnassignRole {
                    role: rng.pick(&ROLES).into(),
                    principal: principal(rng),
                    target: target(rng),
                    precondition: 0,
                }),
                _ => Op::AddMember(pb::AddMember {
                    group: rng.pick(&GROUPS).into(),
                    member: principal(rng),
                    precondition: 0,
                }),
            };
            pb::MembershipOperation {
                operation: Some(op),
            }
        })
        .collect()
}

impl Writer {
    /// The records a run starts from: subjects, scopes a → b → c, groups
    /// (g1 nested in g0), the custom role. Returns the last revision.
    pub async fn seed(&self) -> u64 {
        let t = self.tenant.clone();
        let mut d = pb::directory_service_client::DirectoryServiceClient::new(self.channel.clone());
        for s in SUBJECTS {
            d.create_subject(pb::CreateSubjectRequest {
                tenant: t.clone(),
                subject: Some(pb::Subject {
                    id: s.into(),
                    ..Default::default()
                }),
                options: None,
            })
            .await
            .unwrap()
            .into_inner();
        }
        for (id, parent) in [("a", ""), ("b", "a"), ("c", "b")] {
            d.create_scope(pb::CreateScopeRequest {
                tenant: t.clone(),
                scope: Some(pb::Scope {
                    id: id.into(),
                    r#type: "unit".into(),
                    parent: parent.into(),
                }),
                options: None,
            })
            .await
            .unwrap()
            .into_inner();
        }
        for g in GROUPS {
            d.create_group(pb::CreateGroupRequest {
                tenant: t.clone(),
                group: Some(pb::Group {
                    id: g.into(),
                    title: g.into(),
                    condition: String::new(),
                }),
                options: None,
            })
            .await
            .unwrap()
            .into_inner();
        }
        let mut rng = Rng::new(0);
        d.create_role(pb::CreateRoleRequest {
            tenant: t.clone(),
            role: Some(role_body(&mut rng)),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
        let mut m =
            pb::membership_service_client::MembershipServiceClient::new(self.channel.clone());
        m.manage_membership(pb::ManageMembershipRequest {
            tenant: t,
            operations: vec![pb::MembershipOperation {
                operation: Some(pb::membership_operation::Operation::AddMember(
                    pb::AddMember {
                        group: "g0".into(),
                        member: Some(pb::Principal {
                            kind: Some(pb::principal::Kind::Group("g1".into())),
                        }),
                        precondition: 0,
                    },
                )),
            }],
            options: None,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
    }

    /// One random write; its revision if it committed (refusals are part of
    /// the game and are ignored, and so are writes whose client gave up
    /// first: a channel with a short timeout makes those on purpose).
    pub async fn write(&self, rng: &mut Rng) -> Option<u64> {
        use pb::membership_operation::Operation as Op;
        let t = self.tenant.clone();
        let mut d = pb::directory_service_client::DirectoryServiceClient::new(self.channel.clone());
        let mut m =
            pb::membership_service_client::MembershipServiceClient::new(self.channel.clone());
        let subject =
            |id: &str, f: &dyn Fn(&mut pb::Subject), path: &str| pb::UpdateSubjectRequest {
                tenant: t.clone(),
                subject: Some({
                    let mut s = pb::Subject {
                        id: id.into(),
                        ..Default::default()
                    };
                    f(&mut s);
                    s
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![path.into()],
                }),
                options: None,
            };
        let revision = match rng.below(20) {
            0..=6 => {
                let ops = membership_batch(rng, 2);
                m.manage_membership(pb::ManageMembershipRequest {
                    tenant: t.clone(),
                    operations: ops,
                    options: None,
                    dry_run: false,
                })
                .await
                .map(|r| r.into_inner().revision)
            }
            7 => {
                let op = Op::RemoveMember(pb::RemoveMember {
                    group: rng.pick(&GROUPS).into(),
                    member: principal(rng),
                    precondition: 0,
                });
                m.manage_membership(pb::ManageMembershipRequest {
                    tenant: t.clone(),
                    operations: vec![pb::MembershipOperation {
                        operation: Some(op),
                    }],
                    options: None,
                    dry_run: false,
                })
                .await
                .map(|r| r.into_inner().revision)
            }
            8 | 9 => {
                let status = if rng.one_in(2) {
                    pb::SubjectStatus::Locked
                } else {
                    pb::SubjectStatus::Active
                };
                d.update_subject(subject(
                    rng.pick(&SUBJECTS),
                    &|s| s.status = status as i32,
                    "status",
                ))
                .await
                .map(|r| r.into_inner().revision)
            }
            10..=12 => {
                let tier = format!("t{}", rng.below(3));
                d.update_subject(subject(
                    rng.pick(&SUBJECTS),
                    &|s| s.attributes = [("tier".to_string(), tier.clone())].into(),
                    "attributes",
                ))
                .await
                .map(|r| r.into_inner().revision)
            }
            13 => {
                let condition = match rng.below(3) {
                    0 => String::new(),
                    v => format!("attributes.tier == \"t{v}\""),
                };
                d.update_group(pb::UpdateGroupRequest {
                    tenant: t.clone(),
                    group: Some(pb::Group {
                        id: rng.pick(&GROUPS).into(),
                        title: String::new(),
                        condition,
                    }),
                    options: None,
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["condition".into()],
                    }),
                })
                .await
                .map(|r| r.into_inner().revision)
            }
            14 => d
                .update_role(pb::UpdateRoleRequest {
                    tenant: t.clone(),
                    role: Some(role_body(rng)),
                    options: None,
                })
                .await
                .map(|r| r.into_inner().revision),
            15 => {
                if rng.one_in(2) {
                    d.delete_role(pb::DeleteRequest {
                        tenant: t.clone(),
                        id: "custom".into(),
                        options: None,
                    })
                    .await
                    .map(|r| r.into_inner().revision)
                } else {
                    d.create_role(pb::CreateRoleRequest {
                        tenant: t.clone(),
                        role: Some(role_body(rng)),
                        options: None,
                    })
                    .await
                    .map(|r| r.into_inner().revision)
                }
            }
            16 | 17 => {
                let disabled = MODULES
                    .iter()
                    .filter(|_| rng.one_in(3))
                    .map(|m| m.to_string())
                    .collect();
                d.update_tenant_settings(pb::UpdateTenantSettingsRequest {
                    tenant: t.clone(),
                    settings: Some(pb::TenantSettings {
                        disabled_resources: disabled,
                    }),
                    options: None,
                })
                .await
                .map(|r| r.into_inner().revision)
            }
            18 => {
                let text = if rng.one_in(2) { SCHEMA_A } else { SCHEMA_B };
                pb::schema_service_client::SchemaServiceClient::new(self.channel.clone())
                    .write_schema(pb::WriteSchemaRequest {
                        schema: text.into(),
                        dry_run: false,
                        expected_revision: 0,
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().revision)
            }
            _ => {
                let id = rng.pick(&SUBJECTS);
                if rng.one_in(2) {
                    d.delete_subject(pb::DeleteRequest {
                        tenant: t.clone(),
                        id: id.into(),
                        options: None,
                    })
                    .await
                    .map(|r| r.into_inner().revision)
                } else {
                    d.create_subject(pb::CreateSubjectRequest {
                        tenant: t.clone(),
                        subject: Some(pb::Subject {
                            id: id.into(),
                            ..Default::default()
                        }),
                        options: None,
                    })
                    .await
                    .map(|r| r.into_inner().revision)
                }
            }
        };
        match revision {
            Ok(r) => Some(r),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition
                        | tonic::Code::NotFound
                        | tonic::Code::AlreadyExists
                        | tonic::Code::InvalidArgument
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) =>
            {
                None
            }
            Err(s) => panic!("unexpected failure of a write: {s:?}"),
        }
    }
}
