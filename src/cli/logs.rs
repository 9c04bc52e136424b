//! Where the binary's logs go and how they look: stderr, as text (ANSI
//! colours only on a terminal) or as one JSON object per line; for the
//! server, through a writer thread, so a call's access-log line costs the
//! call its formatting and a copy into a shared buffer, but neither the
//! write to stderr nor a wake-up of the writer per line. Must not decide
//! what is logged; every module logs through `tracing`.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

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

/// Bytes of lines waiting for the writer thread, at most: past it a
/// logging thread waits for room, so no line is ever dropped.
const QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// How long the writer thread, once woken by a line, lets more lines
/// gather before it writes: a busy server's access log then costs one
/// wake-up and one write per this interval, not a wake-up of the writer
/// thread (a system call and a context switch) per call.
const LINGER: Duration = Duration::from_millis(10);

/// Bytes gathered past which the writer thread writes without lingering.
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
    let queue = Arc::new(Queue::default());
    let writer = queue.clone();
    let started = std::thread::Builder::new()
        .name("authzd-logs".into())
        .spawn(move || writer.write_lines());
    if started.is_err() {
        // Without the thread, lines go straight to stderr as before.
        install(format, level, std::io::stderr);
        return None;
    }
    install(format, level, Background(queue.clone()));
    Some(Flush(queue))
}

fn install<W>(format: LogFormat, level: &str, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(Utc)
        .with_writer(writer);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// The time each line starts with: UTC, RFC 3339 with microseconds
/// (`2026-12-08T01:11:44.058338Z`), as tracing-subscriber's own timer
/// writes it, but with the date and time of day made once per second per
/// thread: that formatting was a fifth of an access-log line's cost.
#[derive(Debug, Clone, Copy, Default)]
struct Utc;

thread_local! {
    /// The last second formatted on this thread: its Unix time and
    /// `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

impl FormatTime for Utc {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let Ok(since) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            // Before 1970: tracing-subscriber's timer knows how.
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let (secs, micros) = (since.as_secs(), since.subsec_micros());
        let (cached, mut date) = SECOND.get();
        if cached != secs {
            match seconds_text(secs) {
                Some(text) => date = text,
                None => return tracing_subscriber::fmt::time::SystemTime.format_time(w),
            }
            SECOND.set((secs, date));
        }
        let date = std::str::from_utf8(&date).map_err(|_| std::fmt::Error)?;
        write!(w, "{date}.{micros:06}Z")
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time, for the years 1970 to 9999.
fn seconds_text(secs: u64) -> Option<[u8; 19]> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    // A year past 9999 makes the text longer than 19 bytes.
    text.as_bytes().try_into().ok()
}

/// The lines logged and not yet written, shared by the logging threads
/// and the writer thread.
#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    /// The writer thread waits here for lines (or a flush).
    lines: Condvar,
    /// Logging threads wait here for room, and [`Flush`] for its lines
    /// to be written.
    written: Condvar,
}

#[derive(Default)]
struct Pending {
    /// Whole lines, in the order they were logged.
    text: Vec<u8>,
    /// The writer thread is asleep until a line comes: the next line
    /// wakes it (and only that one, so a line costs no system call).
    idle: bool,
    /// Batches the writer thread has taken from `text` so far.
    taken: u64,
    /// Batches written so far; a flush waits until the batch after the
    /// last one taken is.
    written: u64,
    /// A flush waits: the writer thread writes without lingering.
    flushing: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A logging thread never panics while holding the lock; if one
        // did, the lines queued are still whole.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one whole line, waiting while the queue is full.
    fn push(&self, line: &[u8]) {
        let mut pending = self.lock();
        while pending.text.len() >= QUEUED_BYTES {
            pending = self
                .written
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        pending.text.extend_from_slice(line);
        if pending.idle {
            pending.idle = false;
            self.lines.notify_one();
        }
    }

    /// The writer thread: writes the lines in the order they were logged,
    /// every line gathered meanwhile in one write.
    fn write_lines(&self) {
        let stderr = std::io::stderr();
        let mut batch = Vec::new();
        loop {
            let mut pending = self.lock();
            while pending.text.is_empty() && !pending.flushing {
                pending.idle = true;
                pending = self
                    .lines
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !pending.flushing && pending.text.len() < BATCH_BYTES {
                drop(pending);
                std::thread::sleep(LINGER);
                pending = self.lock();
            }
            std::mem::swap(&mut pending.text, &mut batch);
            pending.flushing = false;
            pending.taken += 1;
            drop(pending);
            let _ = stderr.lock().write_all(&batch);
            batch.clear();
            self.lock().written += 1;
            self.written.notify_all();
        }
    }
}

thread_local! {
    /// The buffer a thread formats its lines in, kept between lines so
    /// that logging one allocates nothing once it has grown.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Hands each formatted line to the writer thread.
struct Background(Arc<Queue>);

impl<'w> MakeWriter<'w> for Background {
    type Writer = Line<'w>;

    fn make_writer(&'w self) -> Line<'w> {
        Line {
            to: &self.0,
            text: SPARE.take(),
        }
    }
}

/// One event's text, queued as one line when the formatter is done with it.
struct Line<'w> {
    to: &'w Queue,
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
        if !self.text.is_empty() {
            self.to.push(&self.text);
        }
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        SPARE.set(text);
    }
}

/// Writes the queued lines when dropped (at the end of `main`), waiting at
/// most [`FLUSH_TIMEOUT`].
#[derive(Debug)]
pub struct Flush(Arc<Queue>);

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        let queue = &*self.0;
        let mut pending = queue.lock();
        // The next batch taken holds every line queued so far.
        let done = pending.taken + 1;
        pending.flushing = true;
        if pending.idle {
            pending.idle = false;
            queue.lines.notify_one();
        }
        let _ = queue
            .written
            .wait_timeout_while(pending, FLUSH_TIMEOUT, |p| p.written < done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer's date and time of day are the calendar's, leap days and
    /// the last representable second included.
    #[test]
    fn seconds_are_written_as_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_164_799, "2024-02-28T23:59:59"),
            (1_796_698_304, "2026-12-08T02:51:44"),
            (4_107_542_399, "2100-02-28T23:59:59"),
            (253_402_300_799, "9999-12-31T23:59:59"),
        ];
        for (secs, text) in cases {
            let written = seconds_text(secs).map(|t| String::from_utf8_lossy(&t).into_owned());
            assert_eq!(written.as_deref(), Some(text), "{secs}");
        }
        assert_eq!(seconds_text(253_402_300_800), None);
    }

    /// A line's time has the shape tracing-subscriber's own timer gives it.
    #[test]
    fn the_time_has_microseconds() {
        let mut text = String::new();
        Utc.format_time(&mut Writer::new(&mut text))
            .unwrap_or_default();
        let bytes = text.as_bytes();
        assert_eq!(bytes.len(), 27, "{text}");
        assert_eq!((bytes[19], bytes[26]), (b'.', b'Z'), "{text}");
        assert!(bytes[20..26].iter().all(u8::is_ascii_digit), "{text}");
    }
}
