//! Early-boot randomness. TLS needs the kernel CRNG to be ready; in a VM without RDRAND or
//! virtio-rng it may never be. This module never blocks silently: it says on the log what is
//! awaited and gives up after a timeout with a clear error. DHCP transaction ids do not need
//! secrecy and come from `GRND_INSECURE`, which never blocks.
use std::time::{Duration, Instant};

use thiserror::Error;

/// Why the kernel random pool is not usable.
#[derive(Debug, Error)]
pub enum EntropyError {
    #[error("the kernel random pool (crng) was not ready after {secs} s; boot with a hardware rng (QEMU: -device virtio-rng-pci and module virtio_rng) or a CPU with RDRAND")]
    Timeout { secs: u64 },
    #[error("getrandom failed")]
    Getrandom(#[source] std::io::Error),
}

/// Waits until `probe` says the CRNG is ready, logging what is awaited (with `hw_rng`, the
/// current hardware rng if any) when it is not ready at once, and again every `every`.
/// Returns how long it waited.
pub fn wait_ready(
    mut probe: impl FnMut() -> std::io::Result<bool>,
    hw_rng: Option<String>,
    timeout: Duration,
    every: Duration,
    poll: Duration,
) -> Result<Duration, EntropyError> {
    let start = Instant::now();
    let mut next_log = start;
    loop {
        if probe().map_err(EntropyError::Getrandom)? {
            let waited = start.elapsed();
            if waited > Duration::ZERO && next_log > start {
                log::info!("crng ready after {:.1} s", waited.as_secs_f64());
            }
            return Ok(waited);
        }
        let now = Instant::now();
        if now - start >= timeout {
            log::error!("crng not ready after {} s, giving up", timeout.as_secs());
            return Err(EntropyError::Timeout {
                secs: timeout.as_secs(),
            });
        }
        if now >= next_log {
            log::warn!(
                "waiting for the kernel random pool (crng init) for TLS: {:.0} s of {} s; hardware rng: {}",
                (now - start).as_secs_f64(),
                timeout.as_secs(),
                hw_rng.as_deref().unwrap_or("none (load virtio_rng, or use a CPU with RDRAND)"),
            );
            next_log = now + every;
        }
        std::thread::sleep(poll.min(timeout - (now - start)));
    }
}

/// Whether the kernel CRNG is initialised (`getrandom(GRND_NONBLOCK)` succeeds).
pub fn crng_ready() -> std::io::Result<bool> {
    super::sys_linux::crng_ready()
}

/// Waits for the CRNG for up to `timeout`, logging every 5 s what is awaited.
pub fn wait_for_crng(timeout: Duration) -> Result<Duration, EntropyError> {
    let hw = std::fs::read_to_string("/sys/class/misc/hw_random/rng_current")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s != "none");
    wait_ready(
        crng_ready,
        hw,
        timeout,
        Duration::from_secs(5),
        Duration::from_millis(100),
    )
}

/// A random `u32` that never blocks (not for secrets): `GRND_INSECURE`, falling back on old
/// kernels to `GRND_NONBLOCK` and then to the clock.
pub fn insecure_u32() -> u32 {
    super::sys_linux::insecure_u32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_some_polls() {
        let mut n = 0;
        let waited = wait_ready(
            || {
                n += 1;
                Ok(n >= 4)
            },
            None,
            Duration::from_secs(5),
            Duration::from_secs(1),
            Duration::from_millis(10),
        )
        .expect("ready");
        assert_eq!(n, 4);
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
    }

    #[test]
    fn never_ready_times_out_at_the_bound() {
        let start = Instant::now();
        let e = wait_ready(
            || Ok(false),
            Some("virtio_rng.0".into()),
            Duration::from_millis(300),
            Duration::from_millis(100),
            Duration::from_millis(20),
        )
        .expect_err("timeout");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(600),
            "{took:?}"
        );
        assert!(e.to_string().contains("virtio-rng-pci"), "{e}");
    }

    #[test]
    fn probe_errors_propagate() {
        let e = wait_ready(
            || Err(std::io::Error::from_raw_os_error(38)),
            None,
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_millis(10),
        )
        .expect_err("enosys");
        assert!(matches!(e, EntropyError::Getrandom(_)));
    }

    /// On this kernel: the syscall answers (ready or not) and never blocks.
    #[test]
    fn real_kernel_calls_do_not_block() {
        let start = Instant::now();
        crng_ready().expect("getrandom works");
        let a: Vec<u32> = (0..8).map(|_| insecure_u32()).collect();
        let mut b = a.clone();
        b.dedup();
        assert!(b.len() > 1, "xids must vary: {a:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
