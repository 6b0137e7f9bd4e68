//! The [`Uevent`] value and its accessors.

use std::ffi::OsStr;
use std::fmt;
use std::num::NonZeroU64;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::Action;

/// A range of bytes inside an event's buffer. Events are at most [`crate::MAX_LEN`] bytes, so
/// `u32` offsets are plenty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    /// The span `start..end`; callers keep both below [`crate::MAX_LEN`] plus a devpath, which
    /// always fits in `u32`.
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn len(self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One device event from the kernel (or read back from sysfs), as every actor exchanges it.
///
/// `ACTION`, `DEVPATH`, `SUBSYSTEM` and `SEQNUM` are stored as typed fields; every other
/// `KEY=VALUE` pair is kept, as bytes, in the order it arrived. When a key arrives twice the
/// last value wins and the key keeps the position of its first arrival.
///
/// Events parsed from a kernel datagram always have a subsystem and a sequence number; events
/// read from a sysfs `uevent` file have neither (the kernel does not write them there).
#[derive(Clone)]
pub struct Uevent {
    pub(crate) action: Action,
    pub(crate) seqnum: Option<NonZeroU64>,
    /// Every byte the spans below point into.
    pub(crate) buf: Box<[u8]>,
    pub(crate) devpath: Span,
    pub(crate) subsystem: Option<Span>,
    /// `(key, value)` spans in arrival order, keys unique.
    pub(crate) props: Vec<(Span, Span)>,
}

/// The prefix of the keys that carry the `KEY=VALUE` arguments of a synthetic event.
const SYNTH_ARG_PREFIX: &[u8] = b"SYNTH_ARG_";

impl Uevent {
    /// The action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The device path below `/sys`, e.g. `/devices/platform/serial8250`. Always starts with
    /// `/` and has no empty, `.` or `..` component.
    pub fn devpath(&self) -> &[u8] {
        self.devpath.get(&self.buf)
    }

    /// [`Self::devpath`] as an `OsStr`, for building paths.
    pub fn devpath_os(&self) -> &OsStr {
        OsStr::from_bytes(self.devpath())
    }

    /// The device's directory under `sysfs_root` (usually `/sys`).
    pub fn sys_path(&self, sysfs_root: &Path) -> PathBuf {
        let relative = self.devpath().strip_prefix(b"/").unwrap_or(self.devpath());
        sysfs_root.join(OsStr::from_bytes(relative))
    }

    /// The subsystem (`SUBSYSTEM=`); always present on events parsed from the kernel.
    pub fn subsystem(&self) -> Option<&[u8]> {
        self.subsystem.map(|s| s.get(&self.buf))
    }

    /// The kernel's sequence number (`SEQNUM=`); always present on events parsed from the
    /// kernel, absent on events read from sysfs.
    pub fn seqnum(&self) -> Option<NonZeroU64> {
        self.seqnum
    }

    /// The value of property `key`. `ACTION`, `DEVPATH`, `SUBSYSTEM` and `SEQNUM` are not
    /// properties: use their accessors.
    pub fn property(&self, key: &[u8]) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(k, _)| k.get(&self.buf) == key)
            .map(|(_, v)| v.get(&self.buf))
    }

    /// Every property other than the four typed fields, in arrival order.
    pub fn properties(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.props
            .iter()
            .map(|(k, v)| (k.get(&self.buf), v.get(&self.buf)))
    }

    /// `MODALIAS=`: what the module loader resolves.
    pub fn modalias(&self) -> Option<&[u8]> {
        self.property(b"MODALIAS")
    }

    /// `DEVTYPE=`
    pub fn devtype(&self) -> Option<&[u8]> {
        self.property(b"DEVTYPE")
    }

    /// `DRIVER=`: the driver bound to the device.
    pub fn driver(&self) -> Option<&[u8]> {
        self.property(b"DRIVER")
    }

    /// `DEVNAME=`: the device node's name below `/dev`.
    pub fn devname(&self) -> Option<&[u8]> {
        self.property(b"DEVNAME")
    }

    /// `MAJOR=` as a number; `None` when absent or not a decimal `u32`.
    pub fn major(&self) -> Option<u32> {
        self.property(b"MAJOR").and_then(parse_decimal_u32)
    }

    /// `MINOR=` as a number; `None` when absent or not a decimal `u32`.
    pub fn minor(&self) -> Option<u32> {
        self.property(b"MINOR").and_then(parse_decimal_u32)
    }

    /// `DEVPATH_OLD=`: the previous devpath of a `move` event.
    pub fn devpath_old(&self) -> Option<&[u8]> {
        self.property(b"DEVPATH_OLD")
    }

    /// `SYNTH_UUID=`: the UUID written into the `uevent` file that produced this synthetic
    /// event (`0` when none was written).
    pub fn synth_uuid(&self) -> Option<&[u8]> {
        self.property(b"SYNTH_UUID")
    }

    /// Whether the event was produced by writing into a `uevent` file (coldplug, trigger)
    /// rather than by the device itself.
    pub fn is_synthetic(&self) -> bool {
        self.synth_uuid().is_some()
    }

    /// The value of the synthetic argument `name` (the property `SYNTH_ARG_<name>`).
    pub fn synth_arg(&self, name: &[u8]) -> Option<&[u8]> {
        self.synth_args()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }

    /// Every synthetic argument as `(name, value)`, the `SYNTH_ARG_` prefix removed, in arrival
    /// order.
    pub fn synth_args(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.properties()
            .filter_map(|(key, value)| key.strip_prefix(SYNTH_ARG_PREFIX).map(|name| (name, value)))
    }
}

fn parse_decimal_u32(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Two events are equal when their action, devpath, subsystem, sequence number and properties
/// (in order) are equal, however they were built.
impl PartialEq for Uevent {
    fn eq(&self, other: &Self) -> bool {
        self.action == other.action
            && self.seqnum == other.seqnum
            && self.devpath() == other.devpath()
            && self.subsystem() == other.subsystem()
            && self.properties().eq(other.properties())
    }
}

impl Eq for Uevent {}

/// Shows bytes as text where they are UTF-8, with invalid sequences replaced.
struct Lossy<'a>(&'a [u8]);

impl fmt::Debug for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.0), f)
    }
}

impl fmt::Debug for Uevent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uevent")
            .field("action", &self.action)
            .field("devpath", &Lossy(self.devpath()))
            .field("subsystem", &self.subsystem().map(Lossy))
            .field("seqnum", &self.seqnum)
            .field(
                "properties",
                &self
                    .properties()
                    .map(|(k, v)| (Lossy(k), Lossy(v)))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Checks that `devpath` is an absolute path of plain components: it starts with `/`, has no
/// empty, `.` or `..` component, and holds no NUL or newline. Such a path cannot escape the
/// sysfs root it is joined to.
pub(crate) fn is_valid_devpath(devpath: &[u8]) -> bool {
    let Some(rest) = devpath.strip_prefix(b"/") else {
        return false;
    };
    !devpath.iter().any(|&b| b == 0 || b == b'\n')
        && rest
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Adds `(key, value)` to `props`, or replaces the value of an earlier `key` (last wins, first
/// position kept).
pub(crate) fn put_property(buf: &[u8], props: &mut Vec<(Span, Span)>, key: Span, value: Span) {
    let key_bytes = key.get(buf);
    let len = key.len();
    match props
        .iter_mut()
        .find(|(k, _)| k.len() == len && k.get(buf) == key_bytes)
    {
        Some(slot) => slot.1 = value,
        None => props.push((key, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devpath_validation_refuses_paths_that_escape_or_are_not_absolute() {
        for good in [
            &b"/devices"[..],
            b"/devices/pci0000:00/0000:00:05.0",
            b"/a@b/c d",
        ] {
            assert!(is_valid_devpath(good), "{good:?}");
        }
        for bad in [
            &b""[..],
            b"/",
            b"devices",
            b"//devices",
            b"/devices/",
            b"/devices/../etc",
            b"/devices/./x",
            b"/..",
            b"/dev\nices",
            b"/dev\0ices",
        ] {
            assert!(!is_valid_devpath(bad), "{bad:?}");
        }
    }

    #[test]
    fn decimal_parsing_refuses_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal_u32(b"0"), Some(0));
        assert_eq!(parse_decimal_u32(b"4294967295"), Some(u32::MAX));
        for bad in [&b""[..], b"+1", b"-1", b" 1", b"1 ", b"4294967296", b"0x10"] {
            assert_eq!(parse_decimal_u32(bad), None, "{bad:?}");
        }
    }
}
