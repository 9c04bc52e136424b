//! The feed's own runtime: the threads the subscriptions' producers run on,
//! at a lower scheduling priority than the request path (on Linux), so
//! that delivering every revision to thousands of subscribers takes the CPU
//! that checks and writes leave over instead of queueing ahead of them.
//! When the CPU is free it runs as fast as before; when requests keep it
//! busy, producers run less often and each run queues several revisions at
//! once, which the transport then writes in fewer, larger frames.
//!
//! Owns the threads and their stop; must not know what runs on them.

use tokio::runtime::{Builder, Handle, Runtime};

/// How much lower the feed's threads are scheduled than the rest of the
/// server (a nice increment, on Linux): weighted about a tenth of a request
/// thread when both want the CPU, so a stream of revisions never starves.
pub const FEED_NICENESS: i32 = 10;

/// The running threads; stopping (on drop) drops every producer still on
/// them, which ends its subscription resumably.
#[derive(Debug)]
pub struct FeedRuntime {
    /// `Some` until dropped.
    runtime: Option<Runtime>,
    /// Spawns on `runtime` (and on nothing once it has stopped).
    handle: Handle,
}

impl FeedRuntime {
    /// Starts the threads (one per core).
    pub fn start() -> std::io::Result<Self> {
        let priority = lowered();
        let runtime = Builder::new_multi_thread()
            .thread_name("authzd-feed")
            .enable_all()
            .on_thread_start(move || set_priority(priority))
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Where to spawn producers.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for FeedRuntime {
    fn drop(&mut self) {
        // Without waiting: the service may be dropped on an async worker,
        // where a runtime must not block.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The feed threads' priority: `FEED_NICENESS` below the thread starting
/// them (absolute, as threads also start from the feed's own threads,
/// which inherit theirs). `None` where it is left as it is: on Linux,
/// `setpriority` of the calling thread applies to that thread alone;
/// elsewhere it would apply to the whole process.
fn lowered() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        match rustix::process::getpriority_process(None) {
            Ok(here) => Some((here + FEED_NICENESS).min(19)),
            Err(error) => {
                tracing::debug!(%error, "the feed's threads keep the server's priority");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Gives the calling thread `priority`, if any.
fn set_priority(priority: Option<i32>) {
    #[cfg(target_os = "linux")]
    if let Some(priority) = priority
        && let Err(error) = rustix::process::setpriority_process(None, priority)
    {
        tracing::debug!(%error, "a feed thread keeps the server's priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "unit tests: a failed expectation is a failed test"
    )]

    use super::*;

    /// What runs on the feed's runtime runs on its own named threads, and
    /// on Linux at `FEED_NICENESS` below the thread that started it.
    #[test]
    fn producers_run_on_the_feeds_threads_at_a_lower_priority() {
        let feed = FeedRuntime::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        drop(feed.handle().spawn(async move {
            let name = std::thread::current().name().map(str::to_string);
            #[cfg(target_os = "linux")]
            let priority = rustix::process::getpriority_process(None).ok();
            #[cfg(not(target_os = "linux"))]
            let priority: Option<i32> = None;
            tx.send((name, priority)).unwrap();
        }));
        let (name, priority) = rx.recv().unwrap();
        assert_eq!(name.as_deref(), Some("authzd-feed"));
        #[cfg(target_os = "linux")]
        {
            let here = rustix::process::getpriority_process(None).unwrap();
            assert_eq!(priority, Some((here + FEED_NICENESS).min(19)));
        }
        #[cfg(not(target_os = "linux"))]
        assert_eq!(priority, None);
    }
}
