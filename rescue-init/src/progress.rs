//! Progress of long steps on the terminal: a bar on a TTY, plain percentage lines elsewhere
//! (a serial console, a log file), nothing when hidden.
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Steps smaller than this print no percentage lines.
const QUIET_BELOW: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hidden,
    Bar,
    Lines,
}

/// Reports progress of one step at a time on stderr.
pub struct Progress {
    mode: Mode,
    label: String,
    total: u64,
    done: u64,
    shown: u64,
    started: Instant,
}

impl Progress {
    /// A bar when stderr is a terminal, percentage lines otherwise.
    pub fn stderr() -> Self {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Self::with_mode(mode)
    }

    /// Plain percentage lines (serial consoles, logs).
    pub fn lines() -> Self {
        Self::with_mode(Mode::Lines)
    }

    /// Shows nothing.
    pub fn hidden() -> Self {
        Self::with_mode(Mode::Hidden)
    }

    fn with_mode(mode: Mode) -> Self {
        Progress {
            mode,
            label: String::new(),
            total: 0,
            done: 0,
            shown: u64::MAX,
            started: Instant::now(),
        }
    }

    /// Begins a step of `total` units (bytes, pages).
    pub fn start(&mut self, label: &str, total: u64) {
        self.label = label.to_string();
        self.total = total;
        self.done = 0;
        self.shown = u64::MAX;
        self.started = Instant::now();
    }

    /// Sets the units done so far.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        let pct = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let step = match self.mode {
            Mode::Hidden => return,
            // Lines for small inputs would only be noise on a serial console.
            Mode::Lines if self.total < QUIET_BELOW => return,
            Mode::Bar => pct,
            Mode::Lines => pct / 10 * 10,
        };
        if step == self.shown {
            return;
        }
        self.shown = step;
        let mut err = std::io::stderr().lock();
        let _ = match self.mode {
            Mode::Bar => {
                let filled = (pct as usize * 30 / 100).min(30);
                write!(
                    err,
                    "\r{:<28} [{}{}] {:>3}% {}",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    pct,
                    human(done)
                )
            }
            _ => writeln!(err, "{}: {}% ({})", self.label, step, human(done)),
        };
    }

    /// Ends the step.
    pub fn finish(&mut self) {
        if self.mode == Mode::Hidden || (self.mode == Mode::Lines && self.total < QUIET_BELOW) {
            return;
        }
        if self.shown != 100 && self.total > 0 {
            self.set(self.total);
        }
        if self.mode == Mode::Bar {
            let _ = writeln!(
                std::io::stderr(),
                " {:.1}s",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Bytes in binary units, e.g. `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
