//! Progress of a transfer on stderr, as `berth copy` draws it (and `push`
//! and `pull`): bars on a terminal, otherwise one line per blob and one line
//! with the rate every interval; nothing when quiet. Driven by the
//! [`CopyEvent`]s the transfer emits.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_client::copy::{BlobOutcome, CopyEvent, OnEvent};
use berth_core::Digest;
use berth_registry::store::BlobCopy;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `s` after a count other than 1.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A count from a report (`u64`) as `plural` and the copy events take it.
pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Human size, binary units.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The progress flags of every command that moves blobs (`copy`, `push`,
/// `pull`, `backup`, `migrate`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ProgressArgs {
    /// Without a terminal, print a progress line this often (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    progress_interval: u64,

    /// No progress output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

impl ProgressArgs {
    /// The display these flags ask for, its lines starting with `verb`.
    pub(crate) fn display(&self, verb: &'static str) -> Display {
        Display::new(
            verb,
            self.quiet,
            Duration::from_secs(self.progress_interval.max(1)),
        )
    }
}

/// Progress: bars on a terminal, periodic lines otherwise, nothing when quiet.
#[derive(Clone)]
pub(crate) struct Display {
    verb: &'static str,
    inner: Arc<Mutex<State>>,
    mode: Mode,
    interval: Duration,
}

#[derive(Clone)]
enum Mode {
    Quiet,
    Bars(MultiProgress),
    Lines,
}

#[derive(Default)]
struct State {
    total_bytes: u64,
    total_blobs: usize,
    done_bytes: u64,
    done_blobs: usize,
    moving: HashMap<Digest, u64>,
    bars: HashMap<Digest, ProgressBar>,
    overall: Option<ProgressBar>,
    started: Option<Instant>,
}

impl Display {
    /// A display whose lines start with `verb` (`copy`, `push`, `pull`).
    pub(crate) fn new(verb: &'static str, quiet: bool, interval: Duration) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Self {
            verb,
            inner: Arc::new(Mutex::new(State::default())),
            mode,
            interval,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shows one event.
    pub(crate) fn event(&self, event: &CopyEvent) {
        let verb = self.verb;
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        let mut state = self.state();
        match event {
            CopyEvent::Planned {
                manifests,
                blobs,
                bytes,
            } => {
                state.total_bytes = *bytes;
                state.total_blobs = *blobs;
                state.started = Some(Instant::now());
                match &self.mode {
                    Mode::Bars(multi) => {
                        let bar = multi.add(ProgressBar::new(*bytes));
                        bar.set_style(style(
                            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
                        ));
                        bar.set_prefix("total");
                        bar.set_message(format!("0/{blobs} blobs"));
                        state.overall = Some(bar);
                    }
                    // A transfer without manifests (a backup's blobs) names none.
                    _ if *manifests == 0 => {
                        eprintln!("{verb}: {blobs} blob{} ({})", plural(*blobs), size(*bytes));
                    }
                    _ => eprintln!(
                        "{verb}: {manifests} manifest{}, {blobs} blob{} ({})",
                        plural(*manifests),
                        plural(*blobs),
                        size(*bytes)
                    ),
                }
            }
            CopyEvent::BlobStarted {
                digest,
                size: bytes,
            } => {
                state.moving.insert(digest.clone(), 0);
                if let Mode::Bars(multi) = &self.mode {
                    let bar = multi.add(ProgressBar::new(*bytes));
                    bar.set_style(style("{prefix:>12} [{bar:30}] {bytes}/{total_bytes}"));
                    bar.set_prefix(short(digest));
                    state.bars.insert(digest.clone(), bar);
                }
            }
            CopyEvent::BlobProgress { digest, moved } => {
                state.moving.insert(digest.clone(), *moved);
                if let Some(bar) = state.bars.get(digest) {
                    bar.set_position(*moved);
                }
                let position = state.done_bytes + state.moving.values().sum::<u64>();
                if let Some(bar) = &state.overall {
                    bar.set_position(position);
                }
            }
            CopyEvent::BlobDone {
                digest,
                size: bytes,
                outcome,
            } => {
                state.moving.remove(digest);
                state.done_bytes += bytes;
                state.done_blobs += 1;
                if let Some(bar) = state.bars.remove(digest) {
                    bar.finish_and_clear();
                }
                let how = match outcome {
                    BlobOutcome::Existed => "already there",
                    BlobOutcome::Mounted => "mounted",
                    BlobOutcome::Copied => "copied",
                };
                match &self.mode {
                    Mode::Bars(multi) => {
                        let _ =
                            multi.println(format!("{:>12} {} {how}", short(digest), size(*bytes)));
                    }
                    _ => eprintln!("{verb}: blob {digest} ({}) {how}", size(*bytes)),
                }
                let (done, total, position) = (
                    state.done_blobs,
                    state.total_blobs,
                    state.done_bytes + state.moving.values().sum::<u64>(),
                );
                if let Some(bar) = &state.overall {
                    bar.set_position(position);
                    bar.set_message(format!("{done}/{total} blobs"));
                }
            }
            CopyEvent::ManifestDone { digest, existed } => {
                if matches!(self.mode, Mode::Lines) {
                    let how = if *existed { "already there" } else { "written" };
                    eprintln!("{verb}: manifest {digest} {how}");
                }
            }
        }
    }

    /// A line of its own (`<verb>: <line>`) about the transfer, above the
    /// bars on a terminal; nothing when quiet.
    pub(crate) fn note(&self, line: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bars(multi) => {
                let _ = multi.println(format!("{}: {line}", self.verb));
            }
            Mode::Lines => eprintln!("{}: {line}", self.verb),
        }
    }

    /// Without a terminal: a line with the rate every interval.
    pub(crate) async fn tick_forever(&self) {
        let verb = self.verb;
        if !matches!(self.mode, Mode::Lines) {
            return;
        }
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(self.interval).await;
            let state = self.state();
            let Some(started) = state.started else {
                continue;
            };
            let moved = state.done_bytes + state.moving.values().sum::<u64>();
            let now = Instant::now();
            let rate = (moved.saturating_sub(last.1)) as f64
                / now.duration_since(last.0).as_secs_f64().max(1e-6)
                / 1e6;
            let percent = if state.total_bytes == 0 {
                100.0
            } else {
                moved as f64 * 100.0 / state.total_bytes as f64
            };
            eprintln!(
                "{verb}: {} of {} ({percent:.0}%), {rate:.1} MB/s, {}/{} blobs, {:.0} s",
                size(moved),
                size(state.total_bytes),
                state.done_blobs,
                state.total_blobs,
                now.duration_since(started).as_secs_f64()
            );
            last = (now, moved);
        }
    }

    /// Clears the bars.
    pub(crate) fn finish(&self) {
        let mut state = self.state();
        if let Some(bar) = state.overall.take() {
            bar.finish_and_clear();
        }
        for (_, bar) in state.bars.drain() {
            bar.finish_and_clear();
        }
    }
}

/// A blob copied by `backup` or `migrate`, as the display shows a copy's blob.
pub(crate) fn blob_copy_event(event: &BlobCopy) -> CopyEvent {
    match event {
        BlobCopy::Started { digest, size } => CopyEvent::BlobStarted {
            digest: digest.clone(),
            size: *size,
        },
        BlobCopy::Progress { digest, moved } => CopyEvent::BlobProgress {
            digest: digest.clone(),
            moved: *moved,
        },
        BlobCopy::Done { digest, size } => CopyEvent::BlobDone {
            digest: digest.clone(),
            size: *size,
            outcome: BlobOutcome::Copied,
        },
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `0123456789ab`: enough of a digest to tell blobs apart on screen.
fn short(digest: &Digest) -> String {
    let hex = digest.hex();
    hex.get(..12).unwrap_or(hex).to_owned()
}

/// Runs the transfer `make` builds on a runtime of its own, its events
/// shown by `display` (with the periodic line off a terminal).
pub(crate) fn drive<T, F>(display: &Display, make: impl FnOnce(OnEvent) -> F) -> anyhow::Result<T>
where
    F: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let on_event: OnEvent = {
        let display = display.clone();
        Arc::new(move |event: &CopyEvent| display.event(event))
    };
    let ticker = display.clone();
    let out = runtime.block_on(async {
        let ticking = tokio::spawn(async move { ticker.tick_forever().await });
        let out = make(on_event).await;
        ticking.abort();
        out
    });
    display.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(12), "12 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
    }
}
