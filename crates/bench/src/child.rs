//! The scale bench's server as a child process: `authzd serve` of a given
//! binary over a data folder, on 127.0.0.1:0, its port learned from its
//! "authzd serving" log line (JSON logs, the access log off), ready once
//! `Health/Check` answers SERVING. Its memory is read from
//! `/proc/PID/status`; it is stopped with SIGTERM and awaited, and killed
//! if it is dropped first (a failed or interrupted bench leaves no server
//! behind). Every wait is bounded. The child's other log lines are copied
//! to stderr as they come. Must not measure calls (they go through gRPC
//! like any client's).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{BenchError, CALL_TIMEOUT};
use authzd_client::{ClientArgs, Remote};

/// How often a wait for the child's exit looks again: the standard library
/// offers no waiting with a time bound, and tokio's process support would
/// put a runtime feature into every build for this one use.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// The message of the line a server logs once it serves.
const ANNOUNCEMENT: &str = "authzd serving";
/// Longest a log line of the child is read as one line; longer ones are
/// cut, so a runaway line cannot grow the bench's memory.
const MAX_LINE: usize = 64 * 1024;

/// A running `authzd serve` child.
pub(super) struct ChildServer {
    /// Killed on drop unless it was stopped first.
    child: Child,
    /// Its process id.
    pid: u32,
    /// Set once it exited after [`ChildServer::stop`]: nothing to kill.
    stopped: bool,
    /// Where it serves.
    pub(super) addr: SocketAddr,
}

/// A process's resident memory, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`, in bytes: resident now.
    pub rss: u64,
    /// `VmHWM`, in bytes: the most it has been resident.
    pub peak: u64,
}

fn failed(what: impl Into<String>) -> BenchError {
    BenchError::Child(what.into())
}

impl ChildServer {
    /// Starts `binary serve --data DATA` and waits until it serves (at most
    /// `timeout`); returns it with the time from spawn to the first SERVING
    /// answer. `label` starts each copied log line.
    pub(super) async fn start(
        binary: &Path,
        data: &Path,
        timeout: Duration,
        label: &str,
    ) -> Result<(Self, Duration), BenchError> {
        Self::start_with(binary, data, &[], timeout, label).await
    }

    /// [`ChildServer::start`] with `extra` flags for `serve`.
    pub(super) async fn start_with(
        binary: &Path,
        data: &Path,
        extra: &[String],
        timeout: Duration,
        label: &str,
    ) -> Result<(Self, Duration), BenchError> {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .args(extra)
            // The server logs start-up and shutdown; one line per call
            // would cost the calls measured their formatting and the pipe.
            .env("RUST_LOG", "info,authzd::access=off")
            .env_remove("AUTHZD_CONFIG")
            // A node is on PostgreSQL only when `extra` says `--store`: the
            // bench's own AUTHZD_STORE must not turn its redb node into one.
            .env_remove("AUTHZD_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
        let pid = child.id();
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| failed("no stderr pipe to the server"))?;
        let (announced, heard) = oneshot::channel();
        let label = label.to_string();
        std::thread::Builder::new()
            .name("bench-child-logs".into())
            .spawn(move || copy_logs(stderr, announced, &label))
            .map_err(|e| failed(format!("cannot start the log reader: {e}")))?;
        let mut server = Self {
            child,
            pid,
            stopped: false,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let left = timeout.saturating_sub(started.elapsed());
        server.addr = match tokio::time::timeout(left, heard).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => return Err(server.exited().await),
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("the server announcing itself ({})", binary.display()),
                    after: timeout,
                });
            }
        };
        server.serving().await?;
        Ok((server, started.elapsed()))
    }

    /// Why the child went away before it served.
    async fn exited(&mut self) -> BenchError {
        match self.wait(CALL_TIMEOUT).await {
            Ok(Some(status)) => failed(format!("exited before serving ({status})")),
            Ok(None) => failed("closed its log before serving"),
            Err(e) => failed(format!("stopped logging before serving: {e}")),
        }
    }

    /// Its exit status once it exits, or `None` after `timeout`.
    async fn wait(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// The address it listens on, as `HOST:PORT`.
    pub(super) fn target(&self) -> String {
        self.addr.to_string()
    }

    /// How clients reach it.
    pub(super) fn remote(&self) -> Result<Remote, BenchError> {
        let remote = Remote::new(&self.target(), &ClientArgs::default())?;
        Ok(remote.with(|e| e.tcp_nodelay(true).connect_timeout(CALL_TIMEOUT)))
    }

    /// Waits for the first `Health/Check` answer, which must be SERVING.
    async fn serving(&self) -> Result<(), BenchError> {
        let mut client = HealthClient::new(self.remote()?.connect().await?);
        let call = client.check(HealthCheckRequest {
            service: String::new(),
        });
        let reply = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| BenchError::Timeout {
                what: "the first health check".into(),
                after: CALL_TIMEOUT,
            })?
            .map_err(super::rpc_error("the first health check"))?;
        match reply.into_inner().status == ServingStatus::Serving as i32 {
            true => Ok(()),
            false => Err(failed("health check answered, but not SERVING")),
        }
    }

    /// Its resident memory now, and its peak.
    pub(super) fn memory(&self) -> Result<Memory, BenchError> {
        let path = PathBuf::from(format!("/proc/{}/status", self.pid));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            failed(format!(
                "reading {} (the scale bench needs Linux): {e}",
                path.display()
            ))
        })?;
        parse_memory(&text)
            .ok_or_else(|| failed(format!("no VmRSS and VmHWM in {}", path.display())))
    }

    /// Sends SIGTERM and waits (at most `timeout`) for a clean exit.
    pub(super) async fn stop(mut self, timeout: Duration) -> Result<(), BenchError> {
        terminate(self.pid)?;
        let exit = self.wait(timeout).await;
        self.stopped = matches!(exit, Ok(Some(_)));
        match exit {
            Ok(Some(status)) if status.success() => Ok(()),
            Ok(Some(status)) => Err(failed(format!("did not exit cleanly ({status})"))),
            Err(e) => Err(failed(format!("waiting for its exit: {e}"))),
            Ok(None) => Err(BenchError::Timeout {
                what: "the server's exit after SIGTERM (killed)".into(),
                after: timeout,
            }),
        }
    }
}

impl Drop for ChildServer {
    /// A failed or interrupted bench leaves no server behind.
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(unix)]
fn terminate(pid: u32) -> Result<(), BenchError> {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| failed(format!("no process id {pid}")))?;
    kill_process(pid, Signal::TERM).map_err(|e| failed(format!("sending SIGTERM: {e}")))
}

#[cfg(not(unix))]
fn terminate(_pid: u32) -> Result<(), BenchError> {
    Err(failed("stopping the server cleanly needs SIGTERM (Unix)"))
}

/// `VmRSS` and `VmHWM` of a `/proc/PID/status` text, in bytes.
fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        kb.checked_mul(1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

/// The address of an announcement line, if `line` is one.
fn announced(line: &serde_json::Value) -> Option<SocketAddr> {
    let fields = line.get("fields")?;
    if fields.get("message")?.as_str()? != ANNOUNCEMENT {
        return None;
    }
    fields.get("listen")?.as_str()?.parse().ok()
}

/// A JSON log line as `LEVEL message key=value ...`; other text as it is.
fn readable(line: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let mut out = value.get("level").map(text).unwrap_or_default();
    let Some(fields) = value.get("fields").and_then(|f| f.as_object()) else {
        return out;
    };
    if let Some(message) = fields.get("message") {
        out.push_str(&format!(" {}", text(message)));
    }
    for (key, v) in fields.iter().filter(|(k, _)| *k != "message") {
        out.push_str(&format!(" {key}={}", text(v)));
    }
    out
}

/// Reads the child's stderr to its end, on a thread of its own: sends the
/// announced address once, copies every line to stderr. Ends when the child
/// closes its stderr.
fn copy_logs(stderr: ChildStderr, announced_to: oneshot::Sender<SocketAddr>, label: &str) {
    let mut reader = BufReader::new(stderr);
    let mut announced_to = Some(announced_to);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(addr) = announced(&value)
            && let Some(to) = announced_to.take()
        {
            let _ = to.send(addr);
        }
        eprintln!("{label}: server: {}", readable(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_in_bytes() {
        let status = "Name:\tauthzd\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss: 1024 * 1024,
                peak: 2048 * 1024
            })
        );
        assert_eq!(parse_memory("VmRSS: 12 kB\n"), None);
    }

    #[test]
    fn the_announcement_gives_the_address() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"authzd serving","listen":"127.0.0.1:4242","revision":"1"},"target":"authzd"}"#;
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(announced(&value), Some("127.0.0.1:4242".parse().unwrap()));
        assert_eq!(
            readable(line),
            "INFO authzd serving listen=127.0.0.1:4242 revision=1"
        );
        let other = r#"{"level":"INFO","fields":{"message":"loading","listen":"127.0.0.1:1"}}"#;
        assert_eq!(announced(&serde_json::from_str(other).unwrap()), None);
        assert_eq!(readable("not json"), "not json");
    }
}
