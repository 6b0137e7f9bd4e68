//! Parsing kernel datagrams (`ACTION@DEVPATH\0KEY=VALUE\0...`); the rules are described in
//! `docs/uevents.md#parsing-a-kernel-datagram`.

use std::num::NonZeroU64;

use crate::event::{Span, is_valid_devpath, put_property};
use crate::{Action, Field, MAX_FIELDS, MAX_LEN, ParseError, Uevent};

/// The first bytes of udevd's rebroadcast format.
const LIBUDEV_MAGIC: &[u8] = b"libudev\0";

/// At most this many bytes of an unknown action are kept in the error.
const MAX_ACTION_IN_ERROR: usize = 32;

impl Uevent {
    /// Parses one datagram exactly as the kernel sends it on `NETLINK_KOBJECT_UEVENT`:
    /// a header `ACTION@DEVPATH`, then `KEY=VALUE` fields, every string NUL-terminated.
    ///
    /// The whole datagram is refused, with a [`ParseError`] naming the fault, when it is empty
    /// or larger than [`MAX_LEN`], is a `libudev` frame, has a header without `@/`, has nothing
    /// after the header, has a string without a NUL terminator, a field without `=` or with an
    /// empty key, more than [`MAX_FIELDS`] fields, lacks `ACTION`, `DEVPATH`, `SUBSYSTEM` or
    /// `SEQNUM`, has an unknown action, a devpath that is not a plain absolute path, a `SEQNUM`
    /// that is not a non-zero decimal u64, or a header that disagrees with `ACTION`/`DEVPATH`.
    ///
    /// Fields are split on their first `=`; values are cut at their first newline (some
    /// drivers end values with one); when a key repeats, the last value wins. Values are
    /// bytes: nothing is required to be UTF-8.
    ///
    /// ```
    /// use uevent::{Action, Uevent};
    /// let datagram = b"add@/devices/platform/serial8250\0ACTION=add\0\
    ///     DEVPATH=/devices/platform/serial8250\0SUBSYSTEM=platform\0\
    ///     MODALIAS=platform:serial8250\0SEQNUM=829\0";
    /// let event = Uevent::parse_kernel(datagram)?;
    /// assert_eq!(event.action(), Action::Add);
    /// assert_eq!(event.modalias(), Some(&b"platform:serial8250"[..]));
    /// assert_eq!(event.seqnum().map(|s| s.get()), Some(829));
    /// # Ok::<(), uevent::ParseError>(())
    /// ```
    pub fn parse_kernel(datagram: &[u8]) -> Result<Uevent, ParseError> {
        if datagram.is_empty() {
            return Err(ParseError::Empty);
        }
        if datagram.len() > MAX_LEN {
            return Err(ParseError::Oversize {
                len: datagram.len(),
            });
        }
        if datagram.starts_with(LIBUDEV_MAGIC) {
            return Err(ParseError::LibudevFrame);
        }

        let header_len = find_nul(datagram).ok_or(ParseError::Unterminated { offset: 0 })?;
        let header = &datagram[..header_len];
        let at = memchr::memchr(b'@', header)
            .filter(|&at| header.get(at + 1) == Some(&b'/'))
            .ok_or(ParseError::BadHeader)?;
        let (header_action, header_devpath) = (&header[..at], &header[at + 1..]);
        let mut offset = header_len + 1;
        if offset >= datagram.len() {
            return Err(ParseError::HeaderOnly);
        }

        let mut action = None;
        let mut devpath = None;
        let mut subsystem = None;
        let mut seqnum = None;
        let mut props = Vec::with_capacity(8);
        let mut fields = 0usize;
        while offset < datagram.len() {
            let rest = &datagram[offset..];
            let len = find_nul(rest).ok_or(ParseError::Unterminated { offset })?;
            let field = &rest[..len];
            fields += 1;
            if fields > MAX_FIELDS {
                return Err(ParseError::TooManyFields);
            }
            let eq = memchr::memchr(b'=', field).ok_or(ParseError::MissingEquals { offset })?;
            if eq == 0 {
                return Err(ParseError::EmptyKey { offset });
            }
            let value = &field[eq + 1..];
            let value_len = memchr::memchr(b'\n', value).unwrap_or(value.len());
            let key_span = Span::new(offset, offset + eq);
            let value_span = Span::new(offset + eq + 1, offset + eq + 1 + value_len);
            match Field::from_key(&field[..eq]) {
                Some(Field::Action) => action = Some(value_span),
                Some(Field::Devpath) => devpath = Some(value_span),
                Some(Field::Subsystem) => subsystem = Some(value_span),
                Some(Field::Seqnum) => seqnum = Some(value_span),
                None => put_property(datagram, &mut props, key_span, value_span),
            }
            offset += len + 1;
        }

        let action_bytes = action
            .ok_or(ParseError::MissingField(Field::Action))?
            .get(datagram);
        let action = Action::from_bytes(action_bytes).ok_or_else(|| {
            let shown = &action_bytes[..action_bytes.len().min(MAX_ACTION_IN_ERROR)];
            ParseError::UnknownAction(String::from_utf8_lossy(shown).into_owned())
        })?;
        if header_action != action_bytes {
            return Err(ParseError::HeaderMismatch(Field::Action));
        }
        let devpath = devpath.ok_or(ParseError::MissingField(Field::Devpath))?;
        if !is_valid_devpath(devpath.get(datagram)) {
            return Err(ParseError::BadDevpath);
        }
        if header_devpath != devpath.get(datagram) {
            return Err(ParseError::HeaderMismatch(Field::Devpath));
        }
        let subsystem = subsystem.ok_or(ParseError::MissingField(Field::Subsystem))?;
        let seqnum = parse_seqnum(
            seqnum
                .ok_or(ParseError::MissingField(Field::Seqnum))?
                .get(datagram),
        )?;

        Ok(Uevent {
            action,
            seqnum: Some(seqnum),
            buf: datagram.into(),
            devpath,
            subsystem: Some(subsystem),
            props,
        })
    }
}

fn find_nul(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(0, bytes)
}

/// A non-zero decimal u64: digits only, no sign, no overflow.
fn parse_seqnum(bytes: &[u8]) -> Result<NonZeroU64, ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::InvalidSeqnum);
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return Err(ParseError::InvalidSeqnum);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError::InvalidSeqnum)?;
    }
    NonZeroU64::new(n).ok_or(ParseError::ZeroSeqnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqnum_accepts_the_full_u64_range_and_nothing_else() {
        assert_eq!(parse_seqnum(b"1").map(NonZeroU64::get), Ok(1));
        assert_eq!(
            parse_seqnum(b"18446744073709551615").map(NonZeroU64::get),
            Ok(u64::MAX)
        );
        assert_eq!(parse_seqnum(b"0"), Err(ParseError::ZeroSeqnum));
        assert_eq!(parse_seqnum(b"000"), Err(ParseError::ZeroSeqnum));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+5",
            b"-5",
            b"5 ",
            b"0x5",
        ] {
            assert_eq!(parse_seqnum(bad), Err(ParseError::InvalidSeqnum), "{bad:?}");
        }
    }
}
