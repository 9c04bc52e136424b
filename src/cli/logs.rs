//! Where the binary's logs go and how they look: stderr, as text (ANSI
//! colours only on a terminal) or as one JSON object per line; for the
//! server, through a writer thread, so a call's access-log line costs the
//! call its formatting but not the write to stderr. Must not decide what is
//! logged; every module logs through `tracing`.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event; coloured only when stderr is a
    /// terminal and `NO_COLOR` is unset.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, and the
    /// event's `fields` (its message under `message`).
    Json,
}

/// Lines waiting for the writer thread, at most: past it a logging thread
/// waits for room, so no line is ever dropped.
const QUEUED_LINES: usize = 16 * 1024;

/// Bytes the writer thread gathers into one write, at most.
const BATCH_BYTES: usize = 64 * 1024;

/// How long [`Flush`] waits for the queued lines to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the process's logger: `RUST_LOG` if set, else `level`. With
/// `background` (the server), lines are written by a thread of their own
/// and the returned [`Flush`] writes what is queued when dropped; without
/// it each line is written to stderr as it is logged.
pub fn init(format: LogFormat, level: &str, background: bool) -> Option<Flush> {
    if !background {
        install(format, level, std::io::stderr);
        return None;
    }
    let (to, from) = sync_channel(QUEUED_LINES);
    let started = std::thread::Builder::new()
        .name("authzd-logs".into())
        .spawn(move || write_lines(&from));
    if started.is_err() {
        // Without the thread, lines go straight to stderr as before.
        install(format, level, std::io::stderr);
        return None;
    }
    install(format, level, Background(to.clone()));
    Some(Flush(to))
}

fn install<W>(format: LogFormat, level: &str, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

enum Message {
    /// One formatted line.
    Line(Vec<u8>),
    /// Answer once every line queued before it is written.
    Flush(SyncSender<()>),
}

/// Hands each formatted line to the writer thread.
struct Background(SyncSender<Message>);

impl<'w> MakeWriter<'w> for Background {
    type Writer = Line<'w>;

    fn make_writer(&'w self) -> Line<'w> {
        Line {
            to: &self.0,
            text: Vec::new(),
        }
    }
}

/// One event's text, sent as one line when the formatter is done with it.
struct Line<'w> {
    to: &'w SyncSender<Message>,
    text: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        // The writer thread is gone (it never stops while the process
        // logs): write the line here rather than lose it.
        if let Err(unsent) = self.to.send(Message::Line(text))
            && let Message::Line(text) = unsent.0
        {
            let _ = std::io::stderr().write_all(&text);
        }
    }
}

/// The writer thread: writes the lines in the order they were logged,
/// several to a write when they queue up.
fn write_lines(from: &Receiver<Message>) {
    let stderr = std::io::stderr();
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut flushed = Vec::new();
    while let Ok(first) = from.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Line(text) => batch.extend_from_slice(&text),
                Message::Flush(done) => flushed.push(done),
            }
            if batch.len() < BATCH_BYTES {
                next = from.try_recv().ok();
            }
        }
        let _ = stderr.lock().write_all(&batch);
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes the queued lines when dropped (at the end of `main`), waiting at
/// most [`FLUSH_TIMEOUT`].
#[derive(Debug)]
pub struct Flush(SyncSender<Message>);

impl Drop for Flush {
    fn drop(&mut self) {
        let (done, written) = sync_channel(1);
        if self.0.send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}
