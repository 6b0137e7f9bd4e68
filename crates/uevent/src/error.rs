//! Typed errors: why a datagram, a sysfs `uevent` file or a built event was refused.

use std::fmt;

use crate::{MAX_FIELDS, MAX_LEN};

/// The four fields every kernel uevent carries, which [`crate::Uevent`] stores apart from the
/// other properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `ACTION=`
    Action,
    /// `DEVPATH=`
    Devpath,
    /// `SUBSYSTEM=`
    Subsystem,
    /// `SEQNUM=`
    Seqnum,
}

impl Field {
    /// The key as it appears in a uevent.
    pub const fn key(self) -> &'static str {
        match self {
            Field::Action => "ACTION",
            Field::Devpath => "DEVPATH",
            Field::Subsystem => "SUBSYSTEM",
            Field::Seqnum => "SEQNUM",
        }
    }

    /// Which of the four fields `key` names, if any.
    pub fn from_key(key: &[u8]) -> Option<Field> {
        Some(match key {
            b"ACTION" => Field::Action,
            b"DEVPATH" => Field::Devpath,
            b"SUBSYSTEM" => Field::Subsystem,
            b"SEQNUM" => Field::Seqnum,
            _ => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why [`crate::Uevent::parse_kernel`] refused a datagram. Offsets are byte offsets into the
/// datagram. The whole datagram is refused on the first fault found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The datagram has no bytes.
    #[error("empty datagram")]
    Empty,
    /// The datagram is larger than [`MAX_LEN`] bytes.
    #[error("datagram of {len} bytes is larger than the {MAX_LEN}-byte limit")]
    Oversize {
        /// The datagram's length.
        len: usize,
    },
    /// The datagram starts with `libudev\0`: udevd's rebroadcast format, never sent by the
    /// kernel.
    #[error("libudev-format frame, not a kernel uevent")]
    LibudevFrame,
    /// The first string is not of the form `ACTION@/DEVPATH`.
    #[error("header is not of the form ACTION@/DEVPATH")]
    BadHeader,
    /// Nothing follows the header.
    #[error("header is not followed by any KEY=VALUE field")]
    HeaderOnly,
    /// A string (the header or a field) runs to the end of the datagram without a NUL.
    #[error("string at byte {offset} is not NUL-terminated")]
    Unterminated {
        /// Where the unterminated string starts.
        offset: usize,
    },
    /// A field has no `=`.
    #[error("field at byte {offset} has no '='")]
    MissingEquals {
        /// Where the field starts.
        offset: usize,
    },
    /// A field starts with `=`.
    #[error("field at byte {offset} has an empty key")]
    EmptyKey {
        /// Where the field starts.
        offset: usize,
    },
    /// More than [`MAX_FIELDS`] `KEY=VALUE` fields.
    #[error("more than {MAX_FIELDS} KEY=VALUE fields")]
    TooManyFields,
    /// `ACTION`, `DEVPATH`, `SUBSYSTEM` or `SEQNUM` is absent.
    #[error("required field {0} is missing")]
    MissingField(Field),
    /// `ACTION` is not one of the eight kernel actions.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    /// The header's action or devpath differs from the `ACTION` or `DEVPATH` field.
    #[error("header does not match the {0} field")]
    HeaderMismatch(Field),
    /// `DEVPATH` is not an absolute path of plain components (no empty, `.` or `..`
    /// component).
    #[error("DEVPATH is not an absolute path of plain components")]
    BadDevpath,
    /// `SEQNUM` is not a decimal number that fits in a u64.
    #[error("SEQNUM is not a decimal u64")]
    InvalidSeqnum,
    /// `SEQNUM` is zero.
    #[error("SEQNUM is zero")]
    ZeroSeqnum,
}

/// The reason of a [`ParseError`] without its details: a small `Copy` value to count
/// rejections by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // each variant is the ParseError variant of the same name
pub enum RejectReason {
    Empty,
    Oversize,
    LibudevFrame,
    BadHeader,
    HeaderOnly,
    Unterminated,
    MissingEquals,
    EmptyKey,
    TooManyFields,
    MissingField,
    UnknownAction,
    HeaderMismatch,
    BadDevpath,
    InvalidSeqnum,
    ZeroSeqnum,
}

impl RejectReason {
    /// Every reason, for building counter tables.
    pub const ALL: [RejectReason; 15] = [
        RejectReason::Empty,
        RejectReason::Oversize,
        RejectReason::LibudevFrame,
        RejectReason::BadHeader,
        RejectReason::HeaderOnly,
        RejectReason::Unterminated,
        RejectReason::MissingEquals,
        RejectReason::EmptyKey,
        RejectReason::TooManyFields,
        RejectReason::MissingField,
        RejectReason::UnknownAction,
        RejectReason::HeaderMismatch,
        RejectReason::BadDevpath,
        RejectReason::InvalidSeqnum,
        RejectReason::ZeroSeqnum,
    ];

    /// A stable snake_case name, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::Oversize => "oversize",
            RejectReason::LibudevFrame => "libudev_frame",
            RejectReason::BadHeader => "bad_header",
            RejectReason::HeaderOnly => "header_only",
            RejectReason::Unterminated => "unterminated",
            RejectReason::MissingEquals => "missing_equals",
            RejectReason::EmptyKey => "empty_key",
            RejectReason::TooManyFields => "too_many_fields",
            RejectReason::MissingField => "missing_field",
            RejectReason::UnknownAction => "unknown_action",
            RejectReason::HeaderMismatch => "header_mismatch",
            RejectReason::BadDevpath => "bad_devpath",
            RejectReason::InvalidSeqnum => "invalid_seqnum",
            RejectReason::ZeroSeqnum => "zero_seqnum",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ParseError {
    /// The reason of this error, without details.
    pub fn reason(&self) -> RejectReason {
        match self {
            ParseError::Empty => RejectReason::Empty,
            ParseError::Oversize { .. } => RejectReason::Oversize,
            ParseError::LibudevFrame => RejectReason::LibudevFrame,
            ParseError::BadHeader => RejectReason::BadHeader,
            ParseError::HeaderOnly => RejectReason::HeaderOnly,
            ParseError::Unterminated { .. } => RejectReason::Unterminated,
            ParseError::MissingEquals { .. } => RejectReason::MissingEquals,
            ParseError::EmptyKey { .. } => RejectReason::EmptyKey,
            ParseError::TooManyFields => RejectReason::TooManyFields,
            ParseError::MissingField(_) => RejectReason::MissingField,
            ParseError::UnknownAction(_) => RejectReason::UnknownAction,
            ParseError::HeaderMismatch(_) => RejectReason::HeaderMismatch,
            ParseError::BadDevpath => RejectReason::BadDevpath,
            ParseError::InvalidSeqnum => RejectReason::InvalidSeqnum,
            ParseError::ZeroSeqnum => RejectReason::ZeroSeqnum,
        }
    }
}

/// Why [`crate::Uevent::parse_sysfs`] refused a sysfs `uevent` file. Lines are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysfsError {
    /// The file is larger than [`MAX_LEN`] bytes.
    #[error("uevent file of {len} bytes is larger than the {MAX_LEN}-byte limit")]
    Oversize {
        /// The file's length.
        len: usize,
    },
    /// The devpath given is not an absolute path of plain components, or holds a NUL or a
    /// newline.
    #[error("devpath is not an absolute path of plain components")]
    BadDevpath,
    /// A line holds a NUL byte.
    #[error("line {line} holds a NUL byte")]
    Nul {
        /// The line number.
        line: usize,
    },
    /// A line has no `=`.
    #[error("line {line} has no '='")]
    MissingEquals {
        /// The line number.
        line: usize,
    },
    /// A line starts with `=`.
    #[error("line {line} has an empty key")]
    EmptyKey {
        /// The line number.
        line: usize,
    },
    /// A line sets `ACTION`, `DEVPATH`, `SUBSYSTEM` or `SEQNUM`, which the kernel never writes
    /// into a `uevent` file.
    #[error("line {line} sets {field}, which a sysfs uevent file never holds")]
    ReservedKey {
        /// The line number.
        line: usize,
        /// The field it tried to set.
        field: Field,
    },
    /// More than [`MAX_FIELDS`] lines.
    #[error("more than {MAX_FIELDS} KEY=VALUE lines")]
    TooManyFields,
}

/// Why [`crate::UeventBuilder::build`] or [`crate::Uevent::with_subsystem`] refused to make an
/// event: what it would make could not be parsed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The devpath is not an absolute path of plain components, or holds a NUL or a newline.
    #[error("devpath is not an absolute path of plain components")]
    BadDevpath,
    /// The subsystem holds a NUL or a newline, or is longer than [`MAX_LEN`].
    #[error("subsystem holds a NUL or a newline, or is too long")]
    BadSubsystem,
    /// The sequence number is zero.
    #[error("SEQNUM must not be zero")]
    ZeroSeqnum,
    /// A key is empty, holds `=`, a NUL or a newline, or names one of the four stored fields.
    #[error("property key {0:?} is empty, reserved, or holds '=', NUL or a newline")]
    BadKey(String),
    /// A value holds a NUL or a newline.
    #[error("value of property {0:?} holds a NUL or a newline")]
    BadValue(String),
    /// More than [`MAX_FIELDS`] fields.
    #[error("more than {MAX_FIELDS} KEY=VALUE fields")]
    TooManyFields,
    /// The encoded datagram would be larger than [`MAX_LEN`] bytes.
    #[error("encoded event of {len} bytes is larger than the {MAX_LEN}-byte limit")]
    Oversize {
        /// The encoded length.
        len: usize,
    },
}

/// Why [`crate::Uevent::encode`] cannot produce a kernel datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The event has no `SUBSYSTEM` or no `SEQNUM` (it was read from sysfs), so it has no
    /// kernel form.
    #[error("event has no {0}, so it has no kernel datagram form")]
    MissingField(Field),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reason_names_are_distinct() {
        let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectReason::ALL.len());
    }

    #[test]
    fn field_keys_round_trip() {
        for field in [
            Field::Action,
            Field::Devpath,
            Field::Subsystem,
            Field::Seqnum,
        ] {
            assert_eq!(Field::from_key(field.key().as_bytes()), Some(field));
        }
        assert_eq!(Field::from_key(b"MODALIAS"), None);
    }
}
