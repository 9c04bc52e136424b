//! Keeps an external list — a file, one subject per line — equal to "who
//! holds `make:scenario_edit` or `make:app_developer` tenant-wide", as an
//! automation tool's user list must be.
//!
//! It lists the holders once (`ListSubjectsWithPermission` at the root),
//! remembers the revision of that answer, then follows `Watch` from it,
//! applying every gain and loss of those permissions at the root. At the
//! root any entry means "held there", whatever its reach, and a change of
//! reach arrives as a loss followed by a gain, so applying the changes in
//! order is enough. After each complete revision (a large one arrives in
//! several pieces, the last marked `revision_complete`) it rewrites the
//! list and a checkpoint file (the revision it has applied, and the
//! holders), each atomically, so a restart resumes from the checkpoint
//! without missing or repeating anything. If the server no longer has the
//! history after the checkpoint, it lists again.
//!
//! Run: `cargo run --example sync_client -- --target 127.0.0.1:50062
//! --tenant shop --list make-users.txt --checkpoint make-users.checkpoint`
//! (`--help` lists every option), with the CLI's TLS and token options
//! (`--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-server-name`,
//! `--token-file` or `AUTHZD_TOKEN`) for a server that needs them. It
//! reports its progress on stderr: the listing, each revision applied, a
//! resume or a new listing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use authzd_client::{ClientArgs, ClientChannel, Remote};
use authzd_server::api::pb;
use pb::access_service_client::AccessServiceClient;
use pb::watch_service_client::WatchServiceClient;

/// The permissions the external tool mirrors.
pub const MIRRORED: [&str; 2] = ["make:scenario_edit", "make:app_developer"];

/// Keeps a file equal to who holds make:scenario_edit or
/// make:app_developer tenant-wide, from authzd's change feed, across its
/// own restarts.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "sync_client", version)]
pub struct Options {
    /// The server, `host:port` or a URL (the commerce-groups example's
    /// server listens on 127.0.0.1:50062).
    #[arg(long, env = "AUTHZD_ADDR", default_value = "127.0.0.1:50062")]
    pub target: String,
    /// The tenant (the commerce-groups seed creates "shop").
    #[arg(long, default_value = "shop")]
    pub tenant: String,
    /// The external list.
    #[arg(long, default_value = "make-users.txt")]
    pub list: PathBuf,
    /// Where the applied revision and holders are kept between runs.
    #[arg(long, default_value = "make-users.checkpoint")]
    pub checkpoint: PathBuf,
    /// TLS and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What the client knows: for each holder, which mirrored permissions it
/// holds, as of `revision`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    /// The last revision applied.
    pub revision: u64,
    /// Holders and what they hold.
    pub holders: BTreeMap<String, BTreeSet<String>>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

impl State {
    fn load(path: &Path) -> Option<State> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let revision = lines.next()?.parse().ok()?;
        let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in lines {
            let (subject, permission) = line.split_once(' ')?;
            holders
                .entry(subject.to_string())
                .or_default()
                .insert(permission.to_string());
        }
        Some(State { revision, holders })
    }

    /// Writes the list and the checkpoint, each through a rename so a crash
    /// leaves either the old or the new file, never half of one. The list
    /// goes first: a checkpoint never gets ahead of the list it describes.
    fn save(&self, options: &Options) -> std::io::Result<()> {
        let list: String = self.holders.keys().map(|s| format!("{s}\n")).collect();
        write_atomically(&options.list, &list)?;
        let mut checkpoint = format!("{}\n", self.revision);
        for (subject, permissions) in &self.holders {
            for p in permissions {
                checkpoint.push_str(&format!("{subject} {p}\n"));
            }
        }
        write_atomically(&options.checkpoint, &checkpoint)
    }

    fn apply(&mut self, change: &pb::PermissionChange) {
        if !change.scope.is_empty() && change.scope != "root" {
            return;
        }
        if !change.target_subject.is_empty() || !MIRRORED.contains(&change.permission.as_str()) {
            return;
        }
        let held = self.holders.entry(change.subject.clone()).or_default();
        if change.direction() == pb::Direction::Gained {
            held.insert(change.permission.clone());
        } else {
            held.remove(&change.permission);
        }
        if held.is_empty() {
            self.holders.remove(&change.subject);
        }
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

async fn channel(options: &Options) -> Result<ClientChannel, Failure> {
    Ok(Remote::new(&options.target, &options.client)?
        .connect()
        .await?)
}

/// Lists every holder of the mirrored permissions at the root.
async fn list(options: &Options) -> Result<State, Failure> {
    let mut access = AccessServiceClient::new(channel(options).await?);
    let mut state = State::default();
    // Both listings must describe one revision: the second waits for the
    // first's, and if writes moved on in between, list again.
    loop {
        let mut revisions = BTreeSet::new();
        state.holders.clear();
        for permission in MIRRORED {
            let mut token = String::new();
            loop {
                let page = access
                    .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
                        tenant: options.tenant.clone(),
                        permission: permission.into(),
                        page_token: token.clone(),
                        at_least_revision: revisions.iter().copied().max().unwrap_or(0),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                revisions.insert(page.revision);
                for h in page.holders {
                    state
                        .holders
                        .entry(h.subject)
                        .or_default()
                        .insert(permission.into());
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        if revisions.len() == 1 {
            state.revision = revisions.into_iter().next().unwrap_or(0);
            eprintln!(
                "listed {} holders of {} at revision {}",
                state.holders.len(),
                MIRRORED.join(" and "),
                state.revision
            );
            return Ok(state);
        }
    }
}

/// Syncs until `stop` resolves. `applied` is told each revision once the
/// list reflects it (tests await it instead of sleeping).
pub async fn sync(
    options: Options,
    applied: tokio::sync::watch::Sender<u64>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    tokio::pin!(stop);
    let mut state = match State::load(&options.checkpoint) {
        Some(state) => {
            eprintln!(
                "resuming from {} at revision {} ({} holders)",
                options.checkpoint.display(),
                state.revision,
                state.holders.len()
            );
            state
        }
        None => list(&options).await?,
    };
    state.save(&options)?;
    applied.send_replace(state.revision);
    let mut watch = WatchServiceClient::new(channel(&options).await?);
    loop {
        let request = pb::WatchRequest {
            tenant: options.tenant.clone(),
            after_revision: state.revision,
            permission: "make:*".into(),
            scope: "root".into(),
            kinds: vec![
                pb::EventKind::PermissionChanges as i32,
                pb::EventKind::Progress as i32,
            ],
            ..Default::default()
        };
        let mut stream = match watch.watch(request).await {
            Ok(s) => s.into_inner(),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::OutOfRange
                ) =>
            {
                // The history after our checkpoint is gone, or the server
                // never had our checkpoint (its data was replaced): start
                // over.
                eprintln!(
                    "the server cannot continue after revision {}: {}; listing again",
                    state.revision,
                    status.message()
                );
                state = list(&options).await?;
                state.save(&options)?;
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        // The pieces received so far of the revision being received.
        let mut pending: Vec<pb::PermissionChange> = Vec::new();
        let mut pending_revision = 0;
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                message = stream.message() => match message {
                    Ok(Some(m)) => {
                        if m.revision != pending_revision {
                            pending.clear();
                            pending_revision = m.revision;
                        }
                        pending.extend(m.permission_changes);
                        // A large revision comes in pieces: only a complete
                        // one is applied and checkpointed, so a restart
                        // mid-revision resumes before it, not halfway.
                        if m.revision_complete {
                            let changes = pending.len();
                            for change in pending.drain(..) {
                                state.apply(&change);
                            }
                            state.revision = m.revision;
                            state.save(&options)?;
                            if changes > 0 {
                                eprintln!(
                                    "revision {}: {changes} permission changes applied, {} holders",
                                    state.revision,
                                    state.holders.len()
                                );
                            }
                            applied.send_replace(state.revision);
                        }
                    }
                    // Lagged, a gap, a server shutting down, or ended:
                    // resume from the checkpoint (whatever was pending of
                    // a revision is read again).
                    Ok(None) => break,
                    Err(status) => {
                        eprintln!(
                            "the feed ended ({}); resuming after revision {}",
                            status.message(),
                            state.revision
                        );
                        break;
                    }
                },
            }
        }
    }
}

#[allow(
    dead_code,
    reason = "tests/binary includes this file as a module, where main is never called"
)]
#[tokio::main]
async fn main() -> Result<(), Failure> {
    let options = <Options as clap::Parser>::parse();
    let (applied, _) = tokio::sync::watch::channel(0);
    sync(options, applied, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
