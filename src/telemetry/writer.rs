//! The log writer: request threads append finished lines to a shared buffer, one
//! background thread writes the buffer to stderr in batches.
//!
//! `tracing-appender`'s non-blocking writer hands every line to its thread through a
//! channel, which wakes the thread (a futex call) and costs a `write` per line: under
//! load that thread took a fifth of the process's CPU, mostly waking up and yielding
//! (`bench/RESULTS.md`). Here a request thread only takes an uncontended lock and copies
//! the line; the writer thread wakes when lines wait for [`FLUSH_INTERVAL`] or when
//! [`BATCH_BYTES`] are pending, so a busy server does a few hundred writes a second and
//! an idle one none at all. The price: a process killed outright (SIGKILL, abort) loses
//! the lines of its last [`FLUSH_INTERVAL`]; on SIGTERM the guard writes them.
//!
//! Kept after an A/B against `tracing-appender` (`bench/RESULTS.md`, 2026-12-01): the
//! CPU per request differs by 2 %, but the appender makes a `write` per line (0.98 per
//! request against 0.008) and its queue took peak RSS to 21 MiB (17 MiB here). A test
//! pins the bytes written to what the appender writes.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Longest a line waits before it is written.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Pending bytes that make the writer write at once rather than at the interval.
pub(super) const BATCH_BYTES: usize = 64 * 1024;

/// Pending bytes past which new lines are dropped (and counted) rather than kept: what
/// absorbs a stalled stderr reader, about a tenth of a second of lines at full load.
pub(super) const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// Where lines go: [`MakeWriter`] for the subscriber. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Keep it alive while logging: dropping it writes what is pending and stops the thread.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Says the thread has written everything and is ending.
    done: std::sync::mpsc::Receiver<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<u8>,
    /// The writer waits for a first line (no timeout): the next line must wake it.
    idle: bool,
    /// The writer waits out the interval: a full batch must wake it.
    batching: bool,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a byte buffer, which is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BatchWriter {
    /// Starts the writer thread over `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(Self, WriterGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let (finished, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    run(&shared, out);
                    let _ = finished.send(());
                }
            })?;
        let guard = WriterGuard {
            shared: Arc::clone(&shared),
            thread: Some(thread),
            done,
        };
        Ok((Self { shared }, guard))
    }

    /// Lines dropped so far because too much was pending.
    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Appends one whole line (the subscriber writes each event in one call).
    fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.closing || state.pending.len() + line.len() > MAX_PENDING_BYTES {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.pending.extend_from_slice(line);
        // Notifying costs a system call: only when the writer sleeps and must not.
        let wake = state.idle || (state.batching && state.pending.len() >= BATCH_BYTES);
        if wake {
            state.idle = false;
            state.batching = false;
        }
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// The writer thread: wait for a line, let a batch gather, write it, until closed.
fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    let mut state = shared.lock();
    loop {
        if state.pending.is_empty() {
            if state.closing {
                break;
            }
            state.idle = true;
            state = shared
                .wake
                .wait_while(state, |s| s.idle && !s.closing)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle = false;
            continue;
        }
        if state.pending.len() < BATCH_BYTES && !state.closing {
            state.batching = true;
            state = shared
                .wake
                .wait_timeout_while(state, FLUSH_INTERVAL, |s| s.batching && !s.closing)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.batching = false;
        }
        std::mem::swap(&mut state.pending, &mut batch);
        drop(state);
        // Nowhere to report a failed write to but the log itself: the lines are lost.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // A stall can have grown the buffer to the cap: give that memory back.
        if batch.capacity() > 4 * BATCH_BYTES {
            batch = Vec::new();
        }
        state = shared.lock();
    }
    drop(state);
    let _ = out.flush();
}

/// How long exiting waits for the last lines to be written: stderr may be a pipe that
/// nobody reads any more, and a process must not hang on its way out for a log.
const EXIT_WAIT: Duration = Duration::from_secs(1);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if self.done.recv_timeout(EXIT_WAIT).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// Collects what the writer thread writes, and how many writes it made.
    #[derive(Clone, Default)]
    struct Sink(Arc<StdMutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut inner = self.0.lock().unwrap();
            inner.0.extend_from_slice(buf);
            inner.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_time_the_guard_drops() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(sink.clone()).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let writer = &writer;
                scope.spawn(move || {
                    for n in 0..5_000 {
                        let line = format!("thread {thread} line {n:05} {}\n", "x".repeat(n % 97));
                        (&mut writer.make_writer())
                            .write_all(line.as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(guard);

        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for thread in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {thread} ")))
                .collect();
            let expected: Vec<String> = (0..5_000)
                .map(|n| format!("thread {thread} line {n:05} {}", "x".repeat(n % 97)))
                .collect();
            assert_eq!(
                mine, expected,
                "thread {thread}: lost, torn or reordered lines"
            );
        }
        assert!(writes < 20_000, "lines were batched: {writes} writes");
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn a_lone_line_is_written_within_the_interval() {
        let sink = Sink::default();
        let (writer, _guard) = BatchWriter::spawn(sink.clone()).unwrap();
        (&mut writer.make_writer()).write_all(b"hello\n").unwrap();
        // Generous: the interval is 20 ms; a loaded machine may take much longer.
        for _ in 0..500 {
            if sink.0.lock().unwrap().0 == b"hello\n" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the line was never written");
    }

    /// A writer that blocks until released, like stderr nobody reads.
    struct Stalled(Arc<(StdMutex<bool>, Condvar)>);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (released, cvar) = &*self.0;
            let _unused = cvar.wait_while(released.lock().unwrap(), |r| !*r).unwrap();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_reader_costs_dropped_lines_not_unbounded_memory_or_a_blocked_caller() {
        let gate = Arc::new((StdMutex::new(false), Condvar::new()));
        let (writer, guard) = BatchWriter::spawn(Stalled(Arc::clone(&gate))).unwrap();
        let line = [b'x'; 1024];
        // Twice what may be pending, plus what the stalled write holds.
        for _ in 0..(3 * MAX_PENDING_BYTES / line.len()) {
            (&mut writer.make_writer()).write_all(&line).unwrap();
        }
        assert!(writer.dropped_lines() > 0);
        assert!(writer.shared.lock().pending.len() <= MAX_PENDING_BYTES);

        // Exiting does not hang on a reader that never comes back.
        let (dropped, was_dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            let _ = dropped.send(());
        });
        assert!(
            was_dropped.recv_timeout(Duration::from_secs(30)).is_ok(),
            "dropping the guard hung on a stalled writer"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }

    /// The lines of `events` through `make` as the service formats them (JSON, flat).
    fn json_lines<W>(make: W, events: impl FnOnce())
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .without_time()
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
    }

    #[test]
    fn it_writes_the_very_bytes_tracing_appender_would() {
        let events = || {
            let span = tracing::info_span!("request", request_id = "r-1");
            let _entered = span.enter();
            for n in 0..200 {
                tracing::info!(n, key = "a/\"b\"\u{7f}é", status = 201, "request");
            }
            tracing::warn!(error = "line\nbreak", "refused");
        };
        let ours = Sink::default();
        let (writer, guard) = BatchWriter::spawn(ours.clone()).unwrap();
        json_lines(writer, events);
        drop(guard);

        let theirs = Sink::default();
        let (appender, appender_guard) = tracing_appender::non_blocking(theirs.clone());
        json_lines(appender, events);
        drop(appender_guard);

        let ours = ours.0.lock().unwrap().0.clone();
        let theirs = theirs.0.lock().unwrap().0.clone();
        assert_eq!(String::from_utf8_lossy(&ours).lines().count(), 201);
        assert_eq!(ours, theirs);
    }
}
