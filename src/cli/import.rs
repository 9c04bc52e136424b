//! `authzd import`: loads subjects and their group memberships in bulk from
//! a CSV file into a running server, through the public gRPC API as any
//! client would.
//!
//! Owns the file format (documented on [`parse`]), its validation (every
//! row, every error with its line number) and the three stages of a run:
//! read and validate the whole file; check it against the server (the groups
//! it names exist; which subjects exist already, looked up one by one or,
//! for a large file, listed) with reads only; then
//! write: `Import` chunks of at most [`MAX_BATCH_OPERATIONS`] records (each
//! row's subject, created or replaced, and its memberships), one revision
//! each, with an idempotency key per chunk, printing progress after each.
//! An import stopped half way is resumed by running it again: the rows
//! already written are found unchanged and skipped.
//! Must not write anything before the whole file has passed both checks,
//! remove anything (an import only adds memberships), or reach around the
//! API into the server (no store, no engine).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures_util::{StreamExt, TryStreamExt, stream};

use authzd_client::{ClientArgs, ClientChannel, ClientError, Remote};
use authzd_core::limits::{MAX_BATCH_OPERATIONS, MAX_PAGE_SIZE};
use authzd_core::model::{GroupId, Quoted, QuotedChar, Subject, SubjectId, check_id};
use authzd_server::api::pb;
use authzd_server::api::pb::directory_service_client::DirectoryServiceClient;
use authzd_server::api::pb::membership_service_client::MembershipServiceClient;

/// The header line every import file starts with.
pub const HEADER: &str = "id,kind,status,groups,attributes";
/// Calls in flight at once while checking and writing subjects. Writes are
/// serialised by the server's write gate; a few in flight hide round trips.
const IN_FLIGHT: usize = 16;
/// `Import` chunks sent at once: one being applied while the next is built,
/// sent and decoded.
const CHUNKS_IN_FLIGHT: usize = 2;
/// Longest a single call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// From this many rows on, the subjects that exist already are found by
/// paging through the tenant's subjects ([`MAX_PAGE_SIZE`] a call) rather
/// than by one lookup per row: a million lookups cost about a minute of
/// round trips, a thousand pages a few seconds. Below it a small file
/// imported into a large tenant does not read the whole tenant.
const LIST_FROM_ROWS: usize = 10_000;

/// `authzd import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The CSV file: a header line `id,kind,status,groups,attributes`, then
    /// one subject per line; or a `.json` file written by `authzd export`,
    /// recreated whole (with system writes: an admin token).
    pub file: PathBuf,
    /// The server to import into (HOST:PORT).
    #[arg(long, env = "AUTHZD_ADDR", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// The tenant to import into.
    #[arg(long)]
    pub tenant: String,
    /// Validate the file and check it against the server, print what would
    /// be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// TLS and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has invalid rows, or rows the server cannot accept (a group
    /// that does not exist). Nothing was written.
    #[error("{}", invalid_text(file, errors))]
    Invalid {
        /// The file, as named on the command line.
        file: String,
        /// Every error, in line order.
        errors: Vec<RowError>,
    },
    /// The server could not be reached, or the TLS or token options could
    /// not be used. Nothing was written.
    #[error(transparent)]
    Connect(#[from] ClientError),
    /// A call failed before anything was written.
    #[error("{what}: {}: {message}; nothing was written", authzd_client::status::code_name(*code))]
    Check {
        /// What the call was doing.
        what: String,
        /// Its status code.
        code: tonic::Code,
        /// Its status message.
        message: String,
    },
    /// A write failed after the file had passed every check. Writes before
    /// it may have been applied; running the import again is safe.
    #[error(
        "{what}: {}: {message}; the writes before it may have been applied, and running the import again is safe",
        authzd_client::status::code_name(*code)
    )]
    Write {
        /// What the call was doing.
        what: String,
        /// Its status code.
        code: tonic::Code,
        /// Its status message.
        message: String,
    },
}

fn invalid_text(file: &str, errors: &[RowError]) -> String {
    let mut text = format!(
        "{file}: {} error{}; nothing was written",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        text.push_str(&format!("\n{file}:{e}"));
    }
    text
}

/// One error of one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The 1-based line number.
    pub line: usize,
    /// The column concerned (`id`, `kind`, …), or `row` for the line as a
    /// whole, `header` for the header.
    pub column: &'static str,
    /// What is wrong, in lowercase.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.line, self.column, self.message)
    }
}

/// One valid line of the file: what to make of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The 1-based line number.
    pub line: usize,
    /// The subject.
    pub id: SubjectId,
    /// `None`: a new subject is a user; an existing one keeps its kind.
    pub kind: Option<pb::SubjectKind>,
    /// `None`: a new subject is active; an existing one keeps its status.
    pub status: Option<pb::SubjectStatus>,
    /// The groups to add the subject to, in id order, without repeats.
    pub groups: Vec<GroupId>,
    /// `None`: a new subject has none; an existing one keeps its own.
    /// `Some`: the subject's attributes become exactly these.
    pub attributes: Option<BTreeMap<String, String>>,
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows in the file.
    pub rows: usize,
    /// Subjects created.
    pub created: usize,
    /// Existing subjects changed.
    pub updated: usize,
    /// Existing subjects already as the file says.
    pub unchanged: usize,
    /// `add_member` operations sent (those already true change nothing).
    pub memberships: usize,
    /// `Import` chunks sent (each one revision).
    pub chunks: usize,
    /// The highest revision the writes answered (0 for a dry run).
    pub revision: u64,
    /// Whether nothing was written.
    pub dry_run: bool,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, tail) = if self.dry_run {
            ("would be ", "; nothing written (--dry-run)".to_string())
        } else {
            ("", format!("; revision {}", self.revision))
        };
        write!(
            f,
            "{}: {} {verb}created, {} {verb}updated, {} unchanged; {}; {}{tail}",
            super::count(self.rows, "row"),
            self.created,
            self.updated,
            self.unchanged,
            super::count(self.memberships, "membership"),
            super::count(self.chunks, "chunk"),
        )
    }
}

/// Runs `authzd import` from the command line: prints the report or the
/// error; returns whether it succeeded.
pub async fn command(args: &ImportArgs) -> bool {
    if args.file.extension().is_some_and(|e| e == "json") {
        let imported = super::tenant_file::import_file(
            &args.file,
            &args.target,
            &args.tenant,
            &args.client,
            args.dry_run,
        );
        return report(args, imported.await);
    }
    report(args, run(args).await)
}

/// Prints how an import ended; whether it succeeded.
fn report(args: &ImportArgs, outcome: Result<impl fmt::Display, impl fmt::Display>) -> bool {
    match outcome {
        Ok(report) => {
            println!("{}: {report}", args.file.display());
            true
        }
        Err(e) => {
            eprintln!("authzd import: {e}");
            false
        }
    }
}

/// Reads, validates, checks against the server and (unless a dry run)
/// writes the file.
pub async fn run(args: &ImportArgs) -> Result<ImportReport, ImportError> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| ImportError::Read {
        path: args.file.clone(),
        source,
    })?;
    let file = args.file.display().to_string();
    let rows = parse(&text).map_err(|errors| ImportError::Invalid {
        file: file.clone(),
        errors,
    })?;
    if let Err(e) = check_id("tenant", &args.tenant) {
        return Err(ImportError::Invalid {
            file,
            errors: vec![RowError {
                line: 0,
                column: "--tenant",
                message: e.reason,
            }],
        });
    }
    let channel = connect(args).await?;
    let plan = plan(channel.clone(), &args.tenant, &file, rows).await?;
    if args.dry_run {
        return Ok(plan.report(true));
    }
    write(channel, &args.tenant, plan).await
}

async fn connect(args: &ImportArgs) -> Result<ClientChannel, ImportError> {
    let remote = Remote::new(&args.target, &args.client)?.with(|endpoint| {
        endpoint
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
    });
    Ok(remote.connect().await?)
}

/// Parses and validates a whole import file, reporting every error.
///
/// # Format
///
/// UTF-8 text (a leading byte-order mark is ignored), one record per line
/// (LF or CRLF). Blank lines are ignored. The first record is the header,
/// exactly `id,kind,status,groups,attributes`. Every other record has five
/// fields in that order, separated by commas:
///
/// - `id`: the subject id (1-256 bytes, no whitespace or control
///   characters). Each id appears at most once in a file.
/// - `kind`: `user` or `service`; empty: `user` for a new subject, unchanged
///   for an existing one.
/// - `status`: `active` or `locked`; empty: `active` for a new subject,
///   unchanged for an existing one.
/// - `groups`: group ids separated by `;`, each of which must exist in the
///   tenant; the subject is added to each (never removed from any).
///   Empty items and repeats are ignored.
/// - `attributes`: `key=value` pairs separated by `;` (the value is
///   everything after the first `=`; keys may not repeat). Empty: none for a
///   new subject, unchanged for an existing one; otherwise they replace the
///   subject's attributes. Values cannot contain `;`.
///
/// A field may be enclosed in double quotes (`"a,b"`), with `""` for a
/// quote inside it, so values may contain commas; a field cannot span
/// lines. Spaces around unquoted fields and around group ids, keys and
/// values are trimmed.
pub fn parse(text: &str) -> Result<Vec<Row>, Vec<RowError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut seen: HashMap<SubjectId, usize> = HashMap::new();
    let mut header_seen = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = match split_record(raw) {
            Ok(f) => f,
            Err(message) => {
                errors.push(RowError {
                    line,
                    column: if header_seen { "row" } else { "header" },
                    message,
                });
                header_seen = true;
                continue;
            }
        };
        if !header_seen {
            header_seen = true;
            if fields.join(",") != HEADER {
                errors.push(RowError {
                    line,
                    column: "header",
                    message: format!(
                        "expected the header {}, found {}",
                        Quoted(HEADER),
                        Quoted(raw.trim())
                    ),
                });
            }
            continue;
        }
        match parse_row(line, &fields) {
            Ok(row) => {
                if let Some(first) = seen.get(&row.id) {
                    errors.push(RowError {
                        line,
                        column: "id",
                        message: format!("subject {} is already on line {first}", row.id),
                    });
                } else {
                    seen.insert(row.id.clone(), line);
                    rows.push(row);
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !header_seen {
        errors.push(RowError {
            line: 1,
            column: "header",
            message: format!(
                "the file is empty; it must start with the header {}",
                Quoted(HEADER)
            ),
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Splits one line into its fields (RFC 4180 quoting, within one line).
fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        // At the start of a field.
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "field {} has an opening quote and no closing one (a field cannot span lines)",
                            fields.len() + 1
                        ));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "field {} has {} after its closing quote; expected a comma",
                        fields.len() + 1,
                        QuotedChar(c)
                    ));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(format!(
                            "field {} has a quote inside an unquoted value; enclose the field in quotes and double the quote",
                            fields.len() + 1
                        ));
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

/// Validates one record's fields, reporting every error of the line.
fn parse_row(line: usize, fields: &[String]) -> Result<Row, Vec<RowError>> {
    let [id, kind, status, groups, attributes] = fields else {
        return Err(vec![RowError {
            line,
            column: "row",
            message: format!(
                "{} fields; expected 5 ({HEADER}) - quote a field that contains a comma",
                fields.len()
            ),
        }]);
    };
    let mut errors = Vec::new();
    let mut error = |column: &'static str, message: String| {
        errors.push(RowError {
            line,
            column,
            message,
        });
    };
    let id = SubjectId::try_from(id.as_str())
        .map_err(|e| error("id", e.reason))
        .ok();
    let kind = match kind.as_str() {
        "" => None,
        "user" => Some(pb::SubjectKind::User),
        "service" => Some(pb::SubjectKind::Service),
        other => {
            error(
                "kind",
                format!(
                    "unknown kind {}; expected user, service or empty",
                    Quoted(other)
                ),
            );
            None
        }
    };
    let status = match status.as_str() {
        "" => None,
        "active" => Some(pb::SubjectStatus::Active),
        "locked" => Some(pb::SubjectStatus::Locked),
        other => {
            error(
                "status",
                format!(
                    "unknown status {}; expected active, locked or empty",
                    Quoted(other)
                ),
            );
            None
        }
    };
    let mut group_ids = BTreeSet::new();
    for g in groups.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        match GroupId::try_from(g) {
            Ok(g) => {
                group_ids.insert(g);
            }
            Err(e) => error("groups", e.reason),
        }
    }
    let attributes = if attributes.trim().is_empty() {
        None
    } else {
        let mut map = BTreeMap::new();
        for pair in attributes
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let Some((key, value)) = pair.split_once('=') else {
                error(
                    "attributes",
                    format!("{} is not key=value; separate pairs with ';'", Quoted(pair)),
                );
                continue;
            };
            let key = key.trim().to_string();
            if map.insert(key.clone(), value.trim().to_string()).is_some() {
                error("attributes", format!("key {} is given twice", Quoted(&key)));
            }
        }
        if let Err(e) = Subject::check_attributes(&map) {
            error("attributes", e.reason);
        }
        Some(map)
    };
    match id {
        Some(id) if errors.is_empty() => Ok(Row {
            line,
            id,
            kind,
            status,
            groups: group_ids.into_iter().collect(),
            attributes,
        }),
        _ => Err(errors),
    }
}

/// What one row does to its subject.
#[derive(Debug)]
enum Action {
    /// The subject does not exist: create it.
    Create(pb::Subject),
    /// The subject exists and differs: replace it with this record.
    Update(pb::Subject),
    /// The subject exists as the file says.
    Unchanged,
}

/// One checked row: what to do with its subject, and the groups to add
/// it to (in id order, as the row gave them).
#[derive(Debug)]
struct Checked {
    id: SubjectId,
    action: Action,
    groups: Vec<GroupId>,
}

impl Checked {
    fn new(row: Row, action: Action) -> Self {
        Checked {
            id: row.id,
            action,
            groups: row.groups,
        }
    }

    /// The records it puts in a chunk: its subject, unless unchanged, and
    /// a membership per group.
    fn records(&self) -> usize {
        usize::from(!matches!(self.action, Action::Unchanged)) + self.groups.len()
    }
}

/// The checked file: one checked row per row, in file order.
#[derive(Debug)]
struct Plan {
    rows: Vec<Checked>,
    /// The latest revision when the checks began (0 for a new tenant).
    checked_at: u64,
}

impl Plan {
    fn report(&self, dry_run: bool) -> ImportReport {
        let count = |f: fn(&Action) -> bool| self.rows.iter().filter(|r| f(&r.action)).count();
        ImportReport {
            rows: self.rows.len(),
            created: count(|a| matches!(a, Action::Create(_))),
            updated: count(|a| matches!(a, Action::Update(_))),
            unchanged: count(|a| matches!(a, Action::Unchanged)),
            memberships: self.rows.iter().map(|r| r.groups.len()).sum(),
            chunks: chunks(&self.rows).len(),
            revision: 0,
            dry_run,
        }
    }
}

/// Checks the rows against the server with reads only: every group named
/// must exist (else the whole file is refused, naming each line), and each
/// subject is looked up (or, from [`LIST_FROM_ROWS`] rows on, found in a
/// listing of the tenant) to choose between create, update and nothing.
async fn plan(
    channel: ClientChannel,
    tenant: &str,
    file: &str,
    rows: Vec<Row>,
) -> Result<Plan, ImportError> {
    let mut directory = DirectoryServiceClient::new(channel);
    let checked_at = match directory
        .get_tenant(pb::GetTenantRequest {
            tenant: tenant.to_string(),
        })
        .await
    {
        Ok(reply) => reply.into_inner().revision,
        Err(s) if s.code() == tonic::Code::NotFound => 0,
        Err(s) => return Err(check_error(format!("reading tenant {tenant}"), s)),
    };
    let groups: BTreeSet<GroupId> = rows.iter().flat_map(|r| r.groups.iter().cloned()).collect();
    let missing: BTreeSet<GroupId> = stream::iter(groups)
        .map(|g| {
            let mut d = directory.clone();
            async move {
                let reply = d
                    .get_group(pb::GetRequest {
                        tenant: tenant.to_string(),
                        id: g.to_string(),
                        at_least_revision: 0,
                    })
                    .await;
                match reply {
                    Ok(_) => Ok(None),
                    Err(s) if s.code() == tonic::Code::NotFound => Ok(Some(g)),
                    Err(s) => Err(check_error(format!("reading group {g}"), s)),
                }
            }
        })
        .buffered(IN_FLIGHT)
        .try_filter_map(|g| async move { Ok(g) })
        .try_collect()
        .await?;
    if !missing.is_empty() {
        let errors = rows
            .iter()
            .flat_map(|r| {
                r.groups
                    .iter()
                    .filter(|g| missing.contains(*g))
                    .map(|g| RowError {
                        line: r.line,
                        column: "groups",
                        message: format!(
                            "group {g} does not exist in tenant {tenant}; create it first"
                        ),
                    })
            })
            .collect();
        return Err(ImportError::Invalid {
            file: file.to_string(),
            errors,
        });
    }

    if rows.len() >= LIST_FROM_ROWS {
        let mut existing = existing_subjects(&mut directory, tenant, &rows).await?;
        let rows = rows
            .into_iter()
            .map(|row| {
                let action = match existing.remove(row.id.as_str()) {
                    Some(current) => update(&row, current),
                    None => Action::Create(new_subject(&row)),
                };
                Checked::new(row, action)
            })
            .collect();
        return Ok(Plan { rows, checked_at });
    }
    let rows = stream::iter(rows)
        .map(|row| {
            let mut d = directory.clone();
            async move {
                let existing = d
                    .get_subject(pb::GetRequest {
                        tenant: tenant.to_string(),
                        id: row.id.to_string(),
                        at_least_revision: 0,
                    })
                    .await;
                let action = match existing {
                    Ok(reply) => match reply.into_inner().subject {
                        Some(current) => update(&row, current),
                        None => Action::Create(new_subject(&row)),
                    },
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        Action::Create(new_subject(&row))
                    }
                    Err(s) => return Err(check_error(format!("reading subject {}", row.id), s)),
                };
                Ok(Checked::new(row, action))
            }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(Plan { rows, checked_at })
}

/// The subjects of `tenant` that `rows` name, read page by page.
async fn existing_subjects(
    directory: &mut DirectoryServiceClient<ClientChannel>,
    tenant: &str,
    rows: &[Row],
) -> Result<HashMap<String, pb::Subject>, ImportError> {
    let wanted: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut found = HashMap::new();
    let mut token = String::new();
    loop {
        let reply = directory
            .list_subjects(pb::ListRequest {
                tenant: tenant.to_string(),
                page: Some(pb::PageRequest {
                    page_size: u32::try_from(MAX_PAGE_SIZE).unwrap_or(u32::MAX),
                    page_token: token,
                }),
                at_least_revision: 0,
            })
            .await;
        let page = match reply {
            Ok(reply) => reply.into_inner(),
            // A tenant that does not exist yet has no subjects.
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(found),
            Err(s) => return Err(check_error(format!("listing the subjects of {tenant}"), s)),
        };
        for subject in page.subjects {
            if wanted.contains(subject.id.as_str()) {
                found.insert(subject.id.clone(), subject);
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(found);
        }
        token = page.next_page_token;
    }
}

fn new_subject(row: &Row) -> pb::Subject {
    pb::Subject {
        id: row.id.to_string(),
        kind: row.kind.unwrap_or(pb::SubjectKind::User) as i32,
        status: row.status.unwrap_or(pb::SubjectStatus::Active) as i32,
        attributes: row
            .attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        home_scope: String::new(),
    }
}

/// What changes for an existing subject: the fields the row gives and that
/// differ; the record to send is the current one with those replaced.
fn update(row: &Row, current: pb::Subject) -> Action {
    let mut next = current.clone();
    if let Some(kind) = row.kind {
        next.kind = kind as i32;
    }
    if let Some(status) = row.status {
        next.status = status as i32;
    }
    if let Some(attributes) = &row.attributes {
        next.attributes = attributes.clone().into_iter().collect();
    }
    if next == current {
        Action::Unchanged
    } else {
        Action::Update(next)
    }
}

fn check_error(what: String, status: tonic::Status) -> ImportError {
    ImportError::Check {
        what,
        code: status.code(),
        message: status.message().to_string(),
    }
}

fn write_error(what: String, status: tonic::Status) -> ImportError {
    ImportError::Write {
        what,
        code: status.code(),
        message: status.message().to_string(),
    }
}

/// The plan's rows in chunks of at most [`MAX_BATCH_OPERATIONS`]
/// records, as the number of rows in each: each row's subject and
/// memberships in one chunk (a row never has more than one subject and a
/// file's groups are far fewer than the limit). Only the bounds: a chunk's
/// request is built as it is sent ([`request`]), so the first one leaves
/// at once and a million rows never exist twice as requests.
fn chunks(rows: &[Checked]) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut taken, mut records) = (0, 0);
    for row in rows {
        let size = row.records();
        if records > 0 && records + size > MAX_BATCH_OPERATIONS {
            out.push(std::mem::take(&mut taken));
            records = 0;
        }
        taken += 1;
        records += size;
    }
    if records > 0 {
        out.push(taken);
    }
    out
}

/// The `Import` request of one chunk's rows: their subjects (unless
/// unchanged), then their memberships, each list in row order.
fn request(tenant: &str, rows: Vec<Checked>) -> pb::ImportRequest {
    let mut request = pb::ImportRequest {
        tenant: tenant.to_string(),
        ..Default::default()
    };
    for row in rows {
        let id = row.id.to_string();
        request
            .memberships
            .extend(row.groups.iter().map(|group| pb::AddMember {
                group: group.to_string(),
                member: Some(pb::Principal {
                    kind: Some(pb::principal::Kind::Subject(id.clone())),
                }),
                precondition: pb::Precondition::Unspecified as i32,
            }));
        match row.action {
            Action::Create(s) | Action::Update(s) => request.subjects.push(s),
            Action::Unchanged => {}
        }
    }
    request
}

/// The idempotency key of a chunk: its content and the revision the plan
/// was checked at, so a retry of the same chunk is answered once, while a
/// later import of the same rows (after a subject was deleted, say) is
/// planned and written afresh.
pub(super) fn chunk_key(tenant: &str, checked_at: u64, request: &pb::ImportRequest) -> String {
    use prost::Message;
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(tenant.as_bytes());
    hash.update(checked_at.to_be_bytes());
    hash.update(request.encode_to_vec());
    let digest = hash.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("import-{hex}")
}

/// Applies a checked plan in `Import` chunks, one revision each, printing
/// progress to stderr after each. [`CHUNKS_IN_FLIGHT`] chunks are sent at
/// once, so that the server applies one while the next is built, sent and
/// decoded; their order does not matter (each row's records are in one
/// chunk, and the groups they name exist).
async fn write(
    channel: ClientChannel,
    tenant: &str,
    plan: Plan,
) -> Result<ImportReport, ImportError> {
    let mut report = plan.report(false);
    let chunks = chunks(&plan.rows);
    let membership = MembershipServiceClient::new(channel);
    let total: usize = plan.rows.iter().map(Checked::records).sum();
    let checked_at = plan.checked_at;
    let mut rows = plan.rows.into_iter();
    let mut replies = stream::iter(chunks.into_iter().enumerate())
        .map(|(n, taken)| {
            let mut request = request(tenant, rows.by_ref().take(taken).collect());
            let records = request.subjects.len() + request.memberships.len();
            let key = chunk_key(tenant, checked_at, &request);
            request.options = Some(pb::WriteOptions {
                idempotency_key: key,
                ..Default::default()
            });
            let mut membership = membership.clone();
            async move {
                let reply = membership
                    .import(request)
                    .await
                    .map_err(|s| write_error(format!("chunk {}", n + 1), s))?;
                Ok::<_, ImportError>((n, records, reply.into_inner().revision))
            }
        })
        .buffered(CHUNKS_IN_FLIGHT);
    let mut sent = 0;
    while let Some((n, records, revision)) = replies.try_next().await? {
        report.revision = report.revision.max(revision);
        sent += records;
        eprintln!(
            "authzd import: chunk {}/{}: {sent}/{total} records, revision {}",
            n + 1,
            report.chunks,
            report.revision
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(rows) => vec![format!("parsed {} rows", rows.len())],
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// Every column, quoting, CRLF, a byte-order mark and blank lines.
    #[test]
    fn parses_every_column() {
        let rows = parse(
            "\u{feff}id,kind,status,groups,attributes\r\n\
             alice,user,active,editors;viewers;editors,dept=sales; region = eu \r\n\
             \n\
             bot,service,locked,,\n\
             \"carol\",,,\"a;b\",\"note=x,y\"\n",
        );
        let Ok(rows) = rows else {
            panic!("{rows:?}");
        };
        assert_eq!(rows.len(), 3);
        let alice = &rows[0];
        assert_eq!((alice.line, alice.id.as_str()), (2, "alice"));
        assert_eq!(alice.kind, Some(pb::SubjectKind::User));
        assert_eq!(
            alice.groups.iter().map(GroupId::as_str).collect::<Vec<_>>(),
            ["editors", "viewers"]
        );
        assert_eq!(
            alice.attributes,
            Some(BTreeMap::from([
                ("dept".to_string(), "sales".to_string()),
                ("region".to_string(), "eu".to_string())
            ]))
        );
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].status, Some(pb::SubjectStatus::Locked));
        assert_eq!(rows[1].attributes, None);
        assert_eq!(rows[2].kind, None);
        assert_eq!(
            rows[2].attributes,
            Some(BTreeMap::from([("note".to_string(), "x,y".to_string())]))
        );
    }

    /// Every bad row is reported, each error with its line and column.
    #[test]
    fn reports_every_error_with_its_line() {
        let text = "id,kind,status,groups,attributes\n\
                    ok,,,,\n\
                    bad id,robot,frozen,,\n\
                    x,user,active,g,novalue\n\
                    ok,,,,\n\
                    y,user\n\
                    z,,,,\"open\n\
                    w,,,,a=1;a=2\n";
        assert_eq!(
            errors(text),
            [
                "3: id: subject id \"bad id\" contains the character ' ' (U+0020); whitespace and control characters are not allowed",
                "3: kind: unknown kind \"robot\"; expected user, service or empty",
                "3: status: unknown status \"frozen\"; expected active, locked or empty",
                "4: attributes: \"novalue\" is not key=value; separate pairs with ';'",
                "5: id: subject ok is already on line 2",
                "6: row: 2 fields; expected 5 (id,kind,status,groups,attributes) - quote a field that contains a comma",
                "7: row: field 5 has an opening quote and no closing one (a field cannot span lines)",
                "8: attributes: key \"a\" is given twice",
            ]
        );
    }

    /// The header is required and must be exact; an empty file is refused.
    #[test]
    fn the_header_is_required() {
        assert_eq!(
            errors("alice,user,active,,\n"),
            [
                "1: header: expected the header \"id,kind,status,groups,attributes\", found \"alice,user,active,,\""
            ]
        );
        assert_eq!(
            errors("\n\n"),
            [
                "1: header: the file is empty; it must start with the header \"id,kind,status,groups,attributes\""
            ]
        );
        assert_eq!(
            errors("id,kind,status,groups,attributes\n"),
            ["parsed 0 rows"]
        );
    }

    /// Doubled quotes inside a quoted field; a bare quote is refused.
    #[test]
    fn quotes_inside_fields() {
        assert_eq!(
            errors("id,kind,status,groups,attributes\na,,,,\"q=say \"\"hi\"\"\"\nb,,,,x\"y\n"),
            [
                "3: row: field 5 has a quote inside an unquoted value; enclose the field in quotes and double the quote"
            ]
        );
        let Ok(rows) = parse("id,kind,status,groups,attributes\na,,,,\"q=say \"\"hi\"\"\"\n")
        else {
            panic!("quoted quotes parse");
        };
        assert_eq!(
            rows[0]
                .attributes
                .as_ref()
                .and_then(|a| a.get("q"))
                .map(String::as_str),
            Some("say \"hi\"")
        );
    }

    /// The report line the command prints.
    #[test]
    fn the_report_reads_well() {
        let report = ImportReport {
            rows: 3,
            created: 2,
            updated: 1,
            unchanged: 0,
            memberships: 4,
            chunks: 1,
            revision: 9,
            dry_run: false,
        };
        assert_eq!(
            report.to_string(),
            "3 rows: 2 created, 1 updated, 0 unchanged; 4 memberships; 1 chunk; revision 9"
        );
        let one = ImportReport {
            rows: 1,
            created: 1,
            updated: 0,
            memberships: 1,
            ..report
        };
        assert_eq!(
            one.to_string(),
            "1 row: 1 created, 0 updated, 0 unchanged; 1 membership; 1 chunk; revision 9"
        );
    }
}
