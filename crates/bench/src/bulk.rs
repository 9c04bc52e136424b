//! The scale bench's fill: a [`Dataset`] loaded into one tenant through the
//! bulk `Import` RPC, as a large customer's first load would be. Scopes
//! (which an import chunk does not carry) are created first through the
//! directory; then the groups with their nestings and roles, in order;
//! then the subjects, each with its memberships and direct roles in the
//! same chunk, in chunks of at most [`MAX_BATCH_OPERATIONS`] records built
//! only as they are sent ([`IN_FLIGHT`] at a time, so the tenant never
//! exists as requests all at once); last, one chunk that puts
//! [`MEMBER_OF_ALL`] into every group. A progress line goes to stderr every
//! [`PROGRESS_EVERY`]. Every chunk is bounded by [`CHUNK_TIMEOUT`]. Must not
//! reach around the API into the server.

use std::ops::Range;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};

use super::fill::{
    assign_record, create_scopes, group, group_record, member_record, subject, subject_record,
};
use super::load::per_second;
use super::{BenchError, rpc_error};
use authzd_client::ClientChannel;
use authzd_core::limits::MAX_BATCH_OPERATIONS;
use authzd_proto::pb;
use authzd_proto::pb::directory_service_client::DirectoryServiceClient;
use authzd_proto::pb::membership_service_client::MembershipServiceClient;
use authzd_testkit::dataset::{Assign, Dataset, MEMBER_OF_ALL, Who};

/// Chunks in flight at once: one being applied while the next is built,
/// sent and decoded.
const IN_FLIGHT: usize = 2;
/// Longest one chunk may take to be answered.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(120);
/// Time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What the import made and how long it took.
#[derive(Debug, Clone)]
pub struct ImportStats {
    /// Subjects imported.
    pub subjects: usize,
    /// Groups imported.
    pub groups: usize,
    /// Scopes created (through the directory, before the import).
    pub scopes: usize,
    /// Memberships imported (of subjects and of nested groups).
    pub memberships: usize,
    /// Role assignments imported.
    pub assignments: usize,
    /// Records in all `Import` chunks.
    pub records: usize,
    /// `Import` chunks sent (one revision each).
    pub chunks: usize,
    /// Wall time of the scope creates.
    pub scopes_elapsed: Duration,
    /// Wall time of the `Import` chunks, first sent to last answered.
    pub elapsed: Duration,
    /// The revision after the last chunk.
    pub revision: u64,
}

impl ImportStats {
    /// Subjects imported per second of the `Import` chunks.
    pub fn subjects_per_sec(&self) -> f64 {
        per_second(self.subjects as u64, self.elapsed)
    }
}

/// One import record, before it is placed in its chunk's list.
enum Record {
    Subject(pb::Subject),
    Group(pb::Group),
    Member(pb::AddMember),
    Assign(pb::AssignRole),
}

/// `records` as one chunk. A chunk applies its lists in the order subjects,
/// groups, memberships, assignments, so records given in that order keep it.
fn request(tenant: &str, records: impl IntoIterator<Item = Record>) -> pb::ImportRequest {
    let mut r = pb::ImportRequest {
        tenant: tenant.to_string(),
        ..Default::default()
    };
    for record in records {
        match record {
            Record::Subject(s) => r.subjects.push(s),
            Record::Group(g) => r.groups.push(g),
            Record::Member(m) => r.memberships.push(m),
            Record::Assign(a) => r.assignments.push(a),
        }
    }
    r
}

fn records_of(r: &pb::ImportRequest) -> usize {
    r.subjects.len() + r.groups.len() + r.memberships.len() + r.assignments.len()
}

/// The subjects of one chunk, and their records' places in the lists of
/// memberships and of direct assignments sorted by subject.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubjectChunk {
    subjects: Range<usize>,
    memberships: Range<usize>,
    assignments: Range<usize>,
}

/// The dataset's subject memberships and direct assignments, each sorted
/// by subject.
struct BySubject<'a> {
    memberships: Vec<&'a (usize, usize)>,
    assignments: Vec<&'a Assign>,
}

fn subject_of(a: &Assign) -> Option<usize> {
    match a.who {
        Who::Subject(s) => Some(s),
        Who::Group(_) => None,
    }
}

impl<'a> BySubject<'a> {
    fn new(data: &'a Dataset) -> Self {
        let mut memberships: Vec<_> = data.memberships.iter().collect();
        memberships.sort_by_key(|m| m.1);
        let mut assignments: Vec<_> = data
            .assignments
            .iter()
            .filter(|a| subject_of(a).is_some())
            .collect();
        assignments.sort_by_key(|a| subject_of(a));
        Self {
            memberships,
            assignments,
        }
    }

    /// Consecutive subjects per chunk, as many as fit in `limit` records
    /// with their memberships and assignments (a subject never spans two).
    fn chunks(&self, subjects: usize, limit: usize) -> Vec<SubjectChunk> {
        let mut out = Vec::new();
        let (mut m, mut a) = (0, 0);
        let mut current = SubjectChunk {
            subjects: 0..0,
            memberships: 0..0,
            assignments: 0..0,
        };
        for s in 0..subjects {
            let m_end = m + self.memberships[m..]
                .iter()
                .take_while(|x| x.1 == s)
                .count();
            let a_end = a + self.assignments[a..]
                .iter()
                .take_while(|x| subject_of(x) == Some(s))
                .count();
            let size = 1 + (m_end - m) + (a_end - a);
            let held =
                current.subjects.len() + current.memberships.len() + current.assignments.len();
            if held > 0 && held + size > limit {
                let next = SubjectChunk {
                    subjects: s..s,
                    memberships: m..m,
                    assignments: a..a,
                };
                out.push(std::mem::replace(&mut current, next));
            }
            current.subjects.end = s + 1;
            current.memberships.end = m_end;
            current.assignments.end = a_end;
            (m, a) = (m_end, a_end);
        }
        if !current.subjects.is_empty() {
            out.push(current);
        }
        out
    }

    fn request(&self, tenant: &str, data: &Dataset, chunk: &SubjectChunk) -> pb::ImportRequest {
        let subjects = chunk
            .subjects
            .clone()
            .map(|i| Record::Subject(subject_record(data, i)));
        let members = self.memberships[chunk.memberships.clone()]
            .iter()
            .map(|&&(g, s)| Record::Member(member_record(g, subject(s))));
        let assigns = self.assignments[chunk.assignments.clone()]
            .iter()
            .map(|a| Record::Assign(assign_record(a)));
        request(tenant, subjects.chain(members).chain(assigns))
    }
}

/// The groups, their nestings and their roles, in that order, in chunks.
fn group_requests(tenant: &str, data: &Dataset) -> Vec<pb::ImportRequest> {
    let groups = (0..data.sizes.groups).map(|i| Record::Group(group_record(i)));
    let nestings = data
        .nestings
        .iter()
        .map(|&(parent, child)| Record::Member(member_record(parent, group(child))));
    let roles = data
        .assignments
        .iter()
        .filter(|a| subject_of(a).is_none())
        .map(|a| Record::Assign(assign_record(a)));
    let all: Vec<Record> = groups.chain(nestings).chain(roles).collect();
    let mut out = Vec::new();
    let mut records = all.into_iter().peekable();
    while records.peek().is_some() {
        out.push(request(tenant, records.by_ref().take(MAX_BATCH_OPERATIONS)));
    }
    out
}

/// [`MEMBER_OF_ALL`] into every group (when both exist).
fn member_of_all(tenant: &str, data: &Dataset) -> Option<pb::ImportRequest> {
    (MEMBER_OF_ALL < data.sizes.subjects && data.sizes.groups > 0).then(|| {
        let adds = (0..data.sizes.groups.min(MAX_BATCH_OPERATIONS))
            .map(|g| Record::Member(member_record(g, subject(MEMBER_OF_ALL))));
        request(tenant, adds)
    })
}

/// Sends one chunk; its revision.
async fn send(
    mut client: MembershipServiceClient<ClientChannel>,
    request: pb::ImportRequest,
    what: String,
) -> Result<u64, BenchError> {
    let reply = tokio::time::timeout(CHUNK_TIMEOUT, client.import(request))
        .await
        .map_err(|_| BenchError::Timeout {
            what: what.clone(),
            after: CHUNK_TIMEOUT,
        })?
        .map_err(rpc_error(what))?;
    Ok(reply.into_inner().revision)
}

/// What the fill has done so far: the counts [`ImportStats`] reports.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// Records in the `Import` chunks sent.
    pub records: usize,
    /// `Import` chunks sent.
    pub chunks: usize,
    /// The highest revision answered.
    pub revision: u64,
}

impl Progress {
    async fn send(
        &mut self,
        client: &MembershipServiceClient<ClientChannel>,
        request: pb::ImportRequest,
        what: &str,
    ) -> Result<(), BenchError> {
        self.records += records_of(&request);
        self.chunks += 1;
        let what = format!("import chunk {} ({what})", self.chunks);
        self.revision = self
            .revision
            .max(send(client.clone(), request, what).await?);
        Ok(())
    }

    /// The stats of a fill of `data` whose subjects' part took `elapsed`.
    pub(super) fn stats(
        &self,
        data: &Dataset,
        scopes_elapsed: Duration,
        elapsed: Duration,
    ) -> ImportStats {
        ImportStats {
            subjects: data.sizes.subjects,
            groups: data.sizes.groups,
            scopes: data.sizes.scopes,
            memberships: data.memberships.len() + data.nestings.len(),
            assignments: data.assignments.len(),
            records: self.records,
            chunks: self.chunks,
            scopes_elapsed,
            elapsed,
            revision: self.revision,
        }
    }
}

/// The part of a fill before the subjects: the scopes through the
/// directory, then the groups, their nestings and roles through `Import`.
/// Returns the time the scopes took.
pub(super) async fn groups(
    channel: &ClientChannel,
    tenant: &str,
    data: &Dataset,
    progress: &mut Progress,
) -> Result<Duration, BenchError> {
    let scopes_started = Instant::now();
    let directory = DirectoryServiceClient::new(channel.clone());
    progress.revision = create_scopes(&directory, tenant, data).await?;
    let scopes_elapsed = scopes_started.elapsed();
    let client = MembershipServiceClient::new(channel.clone());
    for r in group_requests(tenant, data) {
        progress.send(&client, r, "groups").await?;
    }
    Ok(scopes_elapsed)
}

/// The part of a fill after the subjects: [`MEMBER_OF_ALL`] into every
/// group, and, when `direct` is given, the subjects' direct roles (which a
/// CSV file does not carry).
pub(super) async fn finish(
    channel: &ClientChannel,
    tenant: &str,
    data: &Dataset,
    direct: bool,
    progress: &mut Progress,
) -> Result<(), BenchError> {
    let client = MembershipServiceClient::new(channel.clone());
    if let Some(r) = member_of_all(tenant, data) {
        progress
            .send(&client, r, "one subject in every group")
            .await?;
    }
    if direct {
        let by_subject = BySubject::new(data);
        for chunk in by_subject.assignments.chunks(MAX_BATCH_OPERATIONS) {
            let assigns = chunk.iter().map(|a| Record::Assign(assign_record(a)));
            progress
                .send(&client, request(tenant, assigns), "direct roles")
                .await?;
        }
    }
    Ok(())
}

/// Loads `data` into `tenant`: scopes through the directory, then
/// everything else through `Import`. `label` starts each progress line.
pub(super) async fn import(
    channel: ClientChannel,
    tenant: &str,
    data: &Dataset,
    label: &str,
) -> Result<ImportStats, BenchError> {
    let mut progress = Progress::default();
    let started = Instant::now();
    let scopes_elapsed = groups(&channel, tenant, data, &mut progress).await?;
    let client = MembershipServiceClient::new(channel.clone());
    let by_subject = BySubject::new(data);
    let plan = by_subject.chunks(data.sizes.subjects, MAX_BATCH_OPERATIONS);
    let total = data.sizes.subjects;
    let first = progress.chunks;
    let mut sent = stream::iter(plan.iter().enumerate())
        .map(|(n, chunk)| {
            let r = by_subject.request(tenant, data, chunk);
            let size = (records_of(&r), chunk.subjects.len());
            let what = format!("import chunk {} (subjects)", first + n + 1);
            let call = send(client.clone(), r, what);
            async move { call.await.map(|revision| (revision, size)) }
        })
        .buffer_unordered(IN_FLIGHT);
    let (mut done, mut said) = (0, Instant::now());
    while let Some((r, (chunk_records, chunk_subjects))) = sent.try_next().await? {
        progress.revision = progress.revision.max(r);
        progress.records += chunk_records;
        done += chunk_subjects;
        if said.elapsed() >= PROGRESS_EVERY || done == total {
            said = Instant::now();
            eprintln!(
                "{label}: imported {done}/{total} subjects, {} records, {:.1} s, revision {}",
                progress.records,
                started.elapsed().as_secs_f64(),
                progress.revision
            );
        }
    }
    drop(sent);
    progress.chunks += plan.len();
    finish(&channel, tenant, data, false, &mut progress).await?;
    let elapsed = started.elapsed().saturating_sub(scopes_elapsed);
    Ok(progress.stats(data, scopes_elapsed, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use authzd_testkit::dataset::Sizes;

    fn data(subjects: usize) -> Dataset {
        let sizes = Sizes {
            subjects,
            groups: 20,
            scopes: 30,
        };
        Dataset::generate(sizes, 5)
    }

    /// Every subject, membership and direct assignment lands in exactly one
    /// chunk, with its subject, and no chunk exceeds the limit.
    #[test]
    fn subject_chunks_cover_everything_within_the_limit() {
        let d = data(1_000);
        let by = BySubject::new(&d);
        let chunks = by.chunks(1_000, 50);
        assert!(chunks.len() > 20, "{}", chunks.len());
        let (mut s, mut m, mut a) = (0, 0, 0);
        for c in &chunks {
            assert_eq!(
                (c.subjects.start, c.memberships.start, c.assignments.start),
                (s, m, a)
            );
            let r = by.request("t", &d, c);
            assert!(records_of(&r) <= 50 && records_of(&r) > 0);
            let ids: Vec<String> = c.subjects.clone().map(Dataset::subject_id).collect();
            for member in &r.memberships {
                let Some(pb::principal::Kind::Subject(id)) =
                    member.member.as_ref().and_then(|p| p.kind.as_ref())
                else {
                    panic!("a membership of no subject");
                };
                assert!(ids.contains(id), "{id} outside its chunk");
            }
            (s, m, a) = (c.subjects.end, c.memberships.end, c.assignments.end);
        }
        assert_eq!(s, 1_000);
        assert_eq!(m, d.memberships.len());
        assert_eq!(
            a,
            d.assignments
                .iter()
                .filter(|x| subject_of(x).is_some())
                .count()
        );
    }

    /// Groups come before the nestings and roles that name them.
    #[test]
    fn group_chunks_keep_groups_first() {
        let d = data(10);
        let requests = group_requests("t", &d);
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.groups.len(), 20);
        assert_eq!(r.memberships.len(), d.nestings.len());
        assert_eq!(r.assignments.len(), 20);
        assert!(r.subjects.is_empty());
    }
}
