//! Shared harness for the integration tests: starts the real server on
//! 127.0.0.1:0 over a fresh data folder and hands out gRPC clients.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use authzd::model::{ManualClock, Timestamp};

use authzd::api::pb;
use authzd::config::Config;
use authzd::service::Service;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use pb::access_service_client::AccessServiceClient;
pub use pb::directory_service_client::DirectoryServiceClient;
pub use pb::membership_service_client::MembershipServiceClient;
pub use pb::schema_service_client::SchemaServiceClient;
pub use pb::watch_service_client::WatchServiceClient;

/// A running server. Dropping it does not stop it; call [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    pub data: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    // Keeps the temporary folder alive for as long as the server (and any
    // restart over the same folder) needs it.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server over a new, empty data folder with the built-in schema.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_at(&data, None).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server with a schema file.
    pub async fn start_with_schema(schema: &Path) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_at(&data, Some(schema.to_path_buf())).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server over a new data folder whose clock the test moves.
    pub async fn start_with_clock(schema: Option<PathBuf>, clock: Arc<ManualClock>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_full(&data, schema, clock).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server over an existing data folder (for restarts).
    pub async fn start_at(data: &Path, schema: Option<PathBuf>) -> TestServer {
        Self::start_full(data, schema, Arc::new(ManualClock::new(Timestamp::now()))).await
    }

    async fn start_full(
        data: &Path,
        schema: Option<PathBuf>,
        clock: Arc<ManualClock>,
    ) -> TestServer {
        let config = Config {
            data_dir: data.to_path_buf(),
            schema,
            ..Config::default()
        };
        let service = Service::open_with_clock(config, clock).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            authzd::server::run(service, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            addr,
            data: data.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops the server gracefully and waits until it has let go of the store,
    /// keeping the data folder for a restart.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self._dir.take()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn access(&self) -> AccessServiceClient<Channel> {
        AccessServiceClient::new(self.channel().await)
    }
    pub async fn directory(&self) -> DirectoryServiceClient<Channel> {
        DirectoryServiceClient::new(self.channel().await)
    }
    pub async fn membership(&self) -> MembershipServiceClient<Channel> {
        MembershipServiceClient::new(self.channel().await)
    }
    pub async fn schema(&self) -> SchemaServiceClient<Channel> {
        SchemaServiceClient::new(self.channel().await)
    }
    pub async fn watch(&self) -> WatchServiceClient<Channel> {
        WatchServiceClient::new(self.channel().await)
    }
}

pub fn subject_principal(id: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Subject(id.into())),
    })
}

pub fn group_principal(id: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Group(id.into())),
    })
}

pub fn scope_target(id: &str) -> Option<pb::Target> {
    Some(pb::Target {
        kind: Some(pb::target::Kind::Scope(id.into())),
    })
}

pub fn population_target(id: &str) -> Option<pb::Target> {
    Some(pb::Target {
        kind: Some(pb::target::Kind::Population(id.into())),
    })
}

pub fn add_member(group: &str, member: Option<pb::Principal>) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AddMember(
            pb::AddMember {
                group: group.into(),
                member,
                precondition: 0,
            },
        )),
    }
}

pub fn remove_member(group: &str, member: Option<pb::Principal>) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::RemoveMember(
            pb::RemoveMember {
                group: group.into(),
                member,
                precondition: 0,
            },
        )),
    }
}

pub fn assign(
    role: &str,
    principal: Option<pb::Principal>,
    target: Option<pb::Target>,
) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AssignRole(
            pb::AssignRole {
                role: role.into(),
                principal,
                target,
                expires_at: None,
                precondition: 0,
            },
        )),
    }
}

pub fn unassign(
    role: &str,
    principal: Option<pb::Principal>,
    target: Option<pb::Target>,
) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::UnassignRole(
            pb::UnassignRole {
                role: role.into(),
                principal,
                target,
                precondition: 0,
            },
        )),
    }
}

/// Creates a subject (user, active) and returns the write's revision.
pub async fn create_subject(server: &TestServer, tenant: &str, id: &str) -> u64 {
    let mut d = server.directory().await;
    d.create_subject(pb::CreateSubjectRequest {
        tenant: tenant.into(),
        subject: Some(pb::Subject {
            id: id.into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Creates a scope under `parent` ("" for the root).
pub async fn create_scope(server: &TestServer, tenant: &str, id: &str, parent: &str) -> u64 {
    let mut d = server.directory().await;
    d.create_scope(pb::CreateScopeRequest {
        tenant: tenant.into(),
        scope: Some(pb::Scope {
            id: id.into(),
            r#type: "unit".into(),
            parent: parent.into(),
        }),
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Creates a group.
pub async fn create_group(server: &TestServer, tenant: &str, id: &str) -> u64 {
    let mut d = server.directory().await;
    d.create_group(pb::CreateGroupRequest {
        tenant: tenant.into(),
        group: Some(pb::Group {
            id: id.into(),
            title: id.into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Applies a membership batch and returns its revision.
pub async fn manage(
    server: &TestServer,
    tenant: &str,
    operations: Vec<pb::MembershipOperation>,
) -> u64 {
    let mut m = server.membership().await;
    m.manage_membership(pb::ManageMembershipRequest {
        tenant: tenant.into(),
        operations,
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Checks a permission at a scope ("" for the root).
pub async fn check(
    server: &TestServer,
    tenant: &str,
    subject: &str,
    permission: &str,
    scope: &str,
) -> bool {
    let mut a = server.access().await;
    a.check_access(pb::CheckAccessRequest {
        tenant: tenant.into(),
        subject: subject.into(),
        permission: permission.into(),
        scope: scope.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .allowed
}
