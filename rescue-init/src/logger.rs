//! The one `log::Log` implementation: writes `<prio>rescue: msg` lines to /dev/kmsg (the
//! kernel copies them to every `console=`, so VGA and serial both show them), falls back to
//! /dev/console, and to stderr outside the rescue image. Every record is also kept in memory
//! for the report. Lines are cut below 900 bytes (kmsg truncates longer writes).
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Longest line, in bytes, prefix included; with its newline a kmsg write stays below 900 bytes.
pub const MAX_LINE: usize = 898;
/// Records kept for the report; older ones are dropped (the count is kept).
const MAX_BUFFERED: usize = 20_000;
const TAG: &str = "rescue: ";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// /dev/kmsg, else /dev/console, else stderr (inside the rescue image).
    Kernel,
    /// stderr (CLI use on a normal machine).
    Stderr,
}

enum Sink {
    Kmsg(File),
    Console(File),
    Stderr,
}

/// One buffered record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    pub level: String,
    pub msg: String,
}

struct Logger {
    sink: Mutex<Sink>,
    buffer: Mutex<(Vec<Record>, usize)>,
    max_level: log::LevelFilter,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// kmsg priority of a level (syslog numbers).
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Split `msg` into lines of at most `MAX_LINE` bytes each, `prefix` included, cut at UTF-8
/// boundaries. Embedded newlines start new lines; empty messages still give one line.
pub fn format_lines(prefix: &str, msg: &str) -> Vec<String> {
    let room = MAX_LINE.saturating_sub(prefix.len()).max(1);
    let mut out = Vec::new();
    for part in msg.split('\n') {
        let mut rest = part;
        loop {
            if rest.len() <= room {
                out.push(format!("{prefix}{rest}"));
                break;
            }
            let mut cut = room;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push(format!("{prefix}{}", &rest[..cut]));
            rest = &rest[cut..];
        }
    }
    out
}

fn open_write(path: &str) -> Option<File> {
    OpenOptions::new().write(true).open(path).ok()
}

impl Logger {
    fn write_lines(&self, level: log::Level, msg: &str) {
        let mut sink = match self.sink.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (prefix, sink_ref): (String, &mut Sink) = match &mut *sink {
            s @ Sink::Kmsg(_) => (format!("<{}>{TAG}", priority(level)), s),
            s => (format!("{TAG}{:<5} ", level.as_str()), s),
        };
        for line in format_lines(&prefix, msg) {
            // Each kmsg write is one record, so write the line in one call. The newline matters:
            // without it the kernel keeps the record open for continuation by the same task and
            // does not print it until another task logs (measured: PID 1's last lines were lost).
            let res = match sink_ref {
                Sink::Kmsg(f) => f.write_all(format!("{line}\n").as_bytes()),
                Sink::Console(f) => f.write_all(format!("{line}\n").as_bytes()),
                Sink::Stderr => std::io::stderr().write_all(format!("{line}\n").as_bytes()),
            };
            // A logger has nowhere to report its own failure; dropping the line is the only option.
            let _ = res;
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.max_level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        self.write_lines(record.level(), &msg);
        let mut buf = match self.buffer.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if buf.0.len() >= MAX_BUFFERED {
            buf.1 += 1;
        } else {
            buf.0.push(Record {
                level: record.level().as_str().to_ascii_lowercase(),
                msg,
            });
        }
    }

    fn flush(&self) {}
}

/// The CLI's logger: stderr, warnings and errors by default (the results go to stdout), more
/// with `RUST_LOG=info` or `debug`.
pub fn init_cli() {
    let level = match std::env::var("RUST_LOG").as_deref().map(str::trim) {
        Ok("error") => log::LevelFilter::Error,
        Ok("info") => log::LevelFilter::Info,
        Ok("debug") => log::LevelFilter::Debug,
        Ok("trace") => log::LevelFilter::Trace,
        Ok("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    install(Sink::Stderr, level);
}

/// Install the logger (once per process; later calls are ignored). Debug records are kept
/// when `verbose` is set.
pub fn init(target: Target, verbose: bool) {
    let sink = match target {
        Target::Kernel => match (open_write("/dev/kmsg"), open_write("/dev/console")) {
            (Some(f), _) => Sink::Kmsg(f),
            (None, Some(f)) => Sink::Console(f),
            (None, None) => Sink::Stderr,
        },
        Target::Stderr => Sink::Stderr,
    };
    let max_level = if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    install(sink, max_level);
}

fn install(sink: Sink, max_level: log::LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger {
        sink: Mutex::new(sink),
        buffer: Mutex::new((Vec::new(), 0)),
        max_level,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Records buffered so far, and how many were dropped because the buffer was full.
pub fn records() -> (Vec<Record>, usize) {
    match LOGGER.get() {
        Some(l) => {
            let buf = match l.buffer.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            (buf.0.clone(), buf.1)
        }
        None => (Vec::new(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_below_the_kmsg_limit_at_char_boundaries() {
        let msg = "é".repeat(1000); // 2000 bytes
        let lines = format_lines("<6>rescue: ", &msg);
        assert!(lines.len() >= 3);
        for l in &lines {
            assert!(l.len() <= MAX_LINE, "line of {} bytes", l.len());
            assert!(l.starts_with("<6>rescue: "));
        }
        let joined: String = lines.iter().map(|l| &l["<6>rescue: ".len()..]).collect();
        assert_eq!(joined, msg);
    }

    #[test]
    fn newlines_split_records_and_levels_map_to_syslog_priorities() {
        assert_eq!(format_lines("p:", "a\nb"), vec!["p:a", "p:b"]);
        assert_eq!(format_lines("p:", ""), vec!["p:"]);
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Info), 6);
    }

    #[test]
    fn records_are_buffered_for_the_report() {
        init(Target::Stderr, false);
        log::info!("buffer-test-marker {}", 42);
        let (recs, _) = records();
        assert!(recs
            .iter()
            .any(|r| r.msg == "buffer-test-marker 42" && r.level == "info"));
    }
}
