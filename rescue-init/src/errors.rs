//! Helpers shared by every module's error type.
use std::error::Error;

/// `top: cause: cause`, on one line, walking `source()`: how every error is shown.
pub fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Whether an I/O error is "no space left on device" (reported as such, whatever the
/// operation was).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
}
