//! Sizing the receive buffer: what the kernel can take, and what a paced writer needs.
//!
//! The kernel takes `SO_RCVBUF`/`SO_RCVBUFFORCE` as a C `int`, caps it at `INT_MAX / 2` and
//! doubles it (for its own bookkeeping); `getsockopt(SO_RCVBUF)` reads the doubled size back.
//! A size above `i32::MAX` would not even reach that cap: it wraps to a negative `int`, which
//! the kernel turns into its minimum buffer of a few KiB.
//!
//! A writer that paces itself against the listener (coldplug's `Pacing::Auto`: one `uevent`
//! write in flight per [`EVENT_BUDGET`] bytes of the effective buffer, a window of at least
//! [`MIN_PACING_WINDOW`]) overruns the socket on every pass when the buffer cannot hold its
//! window. [`check_window`] tells that at start instead.

/// The largest receive buffer, in bytes, that the kernel takes as asked: `i32::MAX / 2`. Larger
/// requests are capped there or, above `i32::MAX`, wrap to a negative `int`.
pub const MAX_RECEIVE_BUFFER: usize = 1_073_741_823;

/// Receive-buffer bytes budgeted per event in flight by a paced writer: the size per event that
/// coldplug's automatic pacing assumes (one write in flight per 4 KiB of effective buffer).
pub const EVENT_BUDGET: usize = 4096;

/// The smallest window, in events, of coldplug's automatic pacing.
pub const MIN_PACING_WINDOW: usize = 4;

/// The smallest receive buffer worth asking for, in bytes: the kernel doubles it, and the
/// doubled size holds [`MIN_PACING_WINDOW`] events of [`EVENT_BUDGET`] bytes.
pub const MIN_RECEIVE_BUFFER: usize = MIN_PACING_WINDOW * EVENT_BUDGET / 2;

/// The effective receive buffer cannot hold one pacing window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the effective receive buffer of {effective} bytes (SO_RCVBUF) holds {} events of {EVENT_BUDGET} bytes, \
     fewer than the pacing window of {window}: every paced replay would overrun it; ask for at least \
     {} bytes (the kernel doubles what is asked; without CAP_NET_ADMIN, net.core.rmem_max caps it)",
    effective / EVENT_BUDGET,
    window.saturating_mul(EVENT_BUDGET).div_ceil(2)
)]
pub struct ReceiveBufferTooSmall {
    /// The effective receive buffer, as read back with `SO_RCVBUF`.
    pub effective: usize,
    /// The pacing window it had to hold, in events.
    pub window: usize,
}

/// Whether an effective receive buffer of `effective` bytes (as `SO_RCVBUF` reads it back)
/// holds a pacing window of `window` events of [`EVENT_BUDGET`] bytes each. A window of 0
/// always fits.
pub fn check_window(effective: usize, window: usize) -> Result<(), ReceiveBufferTooSmall> {
    if effective / EVENT_BUDGET >= window {
        Ok(())
    } else {
        Err(ReceiveBufferTooSmall { effective, window })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_the_kernels() {
        assert_eq!(MAX_RECEIVE_BUFFER, (i32::MAX / 2) as usize);
        assert_eq!(MIN_RECEIVE_BUFFER, 8192);
        // The smallest request, doubled, holds the smallest automatic window.
        assert_eq!(
            check_window(2 * MIN_RECEIVE_BUFFER, MIN_PACING_WINDOW),
            Ok(())
        );
    }

    #[test]
    fn a_window_fits_when_every_event_has_its_budget() {
        assert_eq!(check_window(16 * 1024, 4), Ok(()));
        assert_eq!(check_window(0, 0), Ok(()));
        let small = check_window(16 * 1024 - 1, 4).unwrap_err();
        assert_eq!(
            small,
            ReceiveBufferTooSmall {
                effective: 16 * 1024 - 1,
                window: 4
            }
        );
        let text = small.to_string();
        assert!(text.contains("holds 3 events of 4096 bytes"), "{text}");
        assert!(text.contains("ask for at least 8192 bytes"), "{text}");
        // An absurd window does not overflow the message.
        assert!(check_window(usize::MAX, usize::MAX).is_err());
        let _ = check_window(0, usize::MAX).unwrap_err().to_string();
    }
}
