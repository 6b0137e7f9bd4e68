//! Building events by hand and encoding them as kernel datagrams (for tests and tools).

use std::num::NonZeroU64;

use crate::event::{Span, is_valid_devpath, put_property};
use crate::{Action, BuildError, EncodeError, Field, MAX_FIELDS, MAX_LEN, Uevent};

/// Builds a [`Uevent`] field by field; see [`Uevent::builder`].
#[derive(Debug, Clone)]
pub struct UeventBuilder {
    action: Action,
    devpath: Vec<u8>,
    subsystem: Option<Vec<u8>>,
    seqnum: Option<u64>,
    properties: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Uevent {
    /// Starts an event with `action` for the device at `devpath` (below `/sys`).
    ///
    /// ```
    /// use uevent::{Action, Uevent};
    /// let event = Uevent::builder(Action::Add, "/devices/platform/serial8250")
    ///     .subsystem("platform")
    ///     .seqnum(7)
    ///     .property("MODALIAS", "platform:serial8250")
    ///     .build()?;
    /// let datagram = event.encode()?;
    /// assert_eq!(Uevent::parse_kernel(&datagram)?, event);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(action: Action, devpath: impl AsRef<[u8]>) -> UeventBuilder {
        UeventBuilder {
            action,
            devpath: devpath.as_ref().to_vec(),
            subsystem: None,
            seqnum: None,
            properties: Vec::new(),
        }
    }

    /// The event as the kernel would send it: header `ACTION@DEVPATH`, then `ACTION`,
    /// `DEVPATH`, `SUBSYSTEM`, the properties in order and `SEQNUM` last, each NUL-terminated.
    /// Events read from sysfs have no subsystem or sequence number and so no kernel form.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.buf.len() + 64);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`Uevent::encode`], appending to `out`. Nothing is appended on error.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let subsystem = self
            .subsystem()
            .ok_or(EncodeError::MissingField(Field::Subsystem))?;
        let seqnum = self
            .seqnum
            .ok_or(EncodeError::MissingField(Field::Seqnum))?;
        let action = self.action.as_str().as_bytes();
        let devpath = self.devpath();
        for part in [action, b"@", devpath, b"\0ACTION=", action, b"\0DEVPATH="] {
            out.extend_from_slice(part);
        }
        for part in [devpath, b"\0SUBSYSTEM=", subsystem, b"\0"] {
            out.extend_from_slice(part);
        }
        for (key, value) in self.properties() {
            for part in [key, b"=", value, b"\0"] {
                out.extend_from_slice(part);
            }
        }
        out.extend_from_slice(format!("SEQNUM={seqnum}\0").as_bytes());
        Ok(())
    }
}

impl UeventBuilder {
    /// Sets `SUBSYSTEM`.
    pub fn subsystem(mut self, subsystem: impl AsRef<[u8]>) -> Self {
        self.subsystem = Some(subsystem.as_ref().to_vec());
        self
    }

    /// Sets `SEQNUM` (must not be zero).
    pub fn seqnum(mut self, seqnum: u64) -> Self {
        self.seqnum = Some(seqnum);
        self
    }

    /// Adds a property; a key given twice keeps its first position and its last value.
    pub fn property(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.properties
            .push((key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Checks every part and makes the event. Refused when the result could not be parsed
    /// back from its kernel form: a devpath that is not a plain absolute path, a NUL or
    /// newline anywhere, a key that is empty, holds `=` or names one of the four typed fields,
    /// a zero sequence number, more than [`MAX_FIELDS`] fields or more than [`MAX_LEN`] bytes.
    /// An event without subsystem or sequence number is allowed (like one read from sysfs).
    pub fn build(self) -> Result<Uevent, BuildError> {
        let bad = |bytes: &[u8]| bytes.iter().any(|&b| b == 0 || b == b'\n');
        if self.devpath.len() > MAX_LEN || !is_valid_devpath(&self.devpath) {
            return Err(BuildError::BadDevpath);
        }
        if self
            .subsystem
            .as_deref()
            .is_some_and(|s| s.len() > MAX_LEN || bad(s))
        {
            return Err(BuildError::BadSubsystem);
        }
        let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        for (key, value) in &self.properties {
            if key.is_empty() || key.contains(&b'=') || bad(key) || Field::from_key(key).is_some() {
                return Err(BuildError::BadKey(show(key)));
            }
            if bad(value) {
                return Err(BuildError::BadValue(show(key)));
            }
        }
        let seqnum = match self.seqnum {
            None => None,
            Some(n) => Some(NonZeroU64::new(n).ok_or(BuildError::ZeroSeqnum)?),
        };

        let mut buf = Vec::new();
        let mut push = |bytes: &[u8]| {
            let start = buf.len();
            buf.extend_from_slice(bytes);
            Span::new(start, buf.len())
        };
        let devpath = push(&self.devpath);
        let subsystem = self.subsystem.as_deref().map(&mut push);
        let mut spans = Vec::with_capacity(self.properties.len());
        for (key, value) in &self.properties {
            spans.push((push(key), push(value)));
        }
        let mut props = Vec::with_capacity(spans.len());
        for (key, value) in spans {
            put_property(&buf, &mut props, key, value);
        }
        let event = Uevent {
            action: self.action,
            seqnum,
            buf: buf.into_boxed_slice(),
            devpath,
            subsystem,
            props,
        };
        if event.props.len() + 4 > MAX_FIELDS {
            return Err(BuildError::TooManyFields);
        }
        let len = event.encoded_len();
        if len > MAX_LEN {
            return Err(BuildError::Oversize { len });
        }
        Ok(event)
    }
}

impl Uevent {
    /// The length [`Uevent::encode`] produces (counting a 20-digit `SEQNUM` and the subsystem,
    /// empty when absent).
    fn encoded_len(&self) -> usize {
        let action = self.action.as_str().len();
        let devpath = self.devpath().len();
        let header = action + 1 + devpath + 1;
        let fixed = "ACTION=".len() + action + 1 + "DEVPATH=".len() + devpath + 1;
        let subsystem = "SUBSYSTEM=".len() + self.subsystem().map_or(0, <[u8]>::len) + 1;
        let seqnum = "SEQNUM=".len() + 20 + 1;
        let props: usize = self.properties().map(|(k, v)| k.len() + v.len() + 2).sum();
        header + fixed + subsystem + seqnum + props
    }
}
