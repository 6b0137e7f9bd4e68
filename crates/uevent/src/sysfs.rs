//! Parsing the `KEY=VALUE` lines of a sysfs `uevent` file.

use crate::event::{Span, is_valid_devpath, put_property};
use crate::{Action, BuildError, Field, MAX_FIELDS, MAX_LEN, SysfsError, Uevent};

impl Uevent {
    /// Builds an `add` event for the device at `devpath` (below `/sys`, e.g.
    /// `/devices/platform/serial8250`) from the contents of its `uevent` file: one `KEY=VALUE`
    /// per line, split on the first `=`. Used to re-synchronise from sysfs without waiting
    /// for the kernel.
    ///
    /// The result has no subsystem and no sequence number (the file holds neither; see
    /// [`Uevent::with_subsystem`]). Empty lines are skipped; when a key repeats, the last value
    /// wins. A file larger than [`MAX_LEN`], a line with a NUL byte, without `=`, with an empty
    /// key or setting one of the four typed fields, more than [`MAX_FIELDS`] lines, or a bad
    /// devpath is refused with a [`SysfsError`] naming the line.
    ///
    /// ```
    /// use uevent::{Action, Uevent};
    /// let event = Uevent::parse_sysfs(
    ///     b"/devices/platform/serial8250",
    ///     b"DRIVER=serial8250\nMODALIAS=platform:serial8250\n",
    /// )?;
    /// assert_eq!(event.action(), Action::Add);
    /// assert_eq!(event.driver(), Some(&b"serial8250"[..]));
    /// assert_eq!(event.seqnum(), None);
    /// # Ok::<(), uevent::SysfsError>(())
    /// ```
    pub fn parse_sysfs(devpath: &[u8], content: &[u8]) -> Result<Uevent, SysfsError> {
        if content.len() > MAX_LEN {
            return Err(SysfsError::Oversize { len: content.len() });
        }
        if devpath.len() > MAX_LEN || !is_valid_devpath(devpath) {
            return Err(SysfsError::BadDevpath);
        }
        let mut buf = Vec::with_capacity(devpath.len() + content.len());
        buf.extend_from_slice(devpath);
        buf.extend_from_slice(content);

        let mut props = Vec::with_capacity(8);
        let mut fields = 0usize;
        let mut offset = devpath.len();
        for (index, line) in content.split(|&b| b == b'\n').enumerate() {
            let line_no = index + 1;
            let start = offset;
            offset += line.len() + 1;
            if line.is_empty() {
                continue;
            }
            if line.contains(&0) {
                return Err(SysfsError::Nul { line: line_no });
            }
            fields += 1;
            if fields > MAX_FIELDS {
                return Err(SysfsError::TooManyFields);
            }
            let eq = line
                .iter()
                .position(|&b| b == b'=')
                .ok_or(SysfsError::MissingEquals { line: line_no })?;
            if eq == 0 {
                return Err(SysfsError::EmptyKey { line: line_no });
            }
            if let Some(field) = Field::from_key(&line[..eq]) {
                return Err(SysfsError::ReservedKey {
                    line: line_no,
                    field,
                });
            }
            put_property(
                &buf,
                &mut props,
                Span::new(start, start + eq),
                Span::new(start + eq + 1, start + line.len()),
            );
        }

        Ok(Uevent {
            action: Action::Add,
            seqnum: None,
            buf: buf.into_boxed_slice(),
            devpath: Span::new(0, devpath.len()),
            subsystem: None,
            props,
        })
    }

    /// The same event with its subsystem set (for events read from sysfs, whose subsystem is
    /// the name of the device's `subsystem` link). Refused when `subsystem` holds a NUL or a
    /// newline, or is longer than [`MAX_LEN`].
    pub fn with_subsystem(self, subsystem: &[u8]) -> Result<Uevent, BuildError> {
        if subsystem.len() > MAX_LEN || subsystem.iter().any(|&b| b == 0 || b == b'\n') {
            return Err(BuildError::BadSubsystem);
        }
        let mut buf = self.buf.into_vec();
        let start = buf.len();
        buf.extend_from_slice(subsystem);
        Ok(Uevent {
            buf: buf.into_boxed_slice(),
            subsystem: Some(Span::new(start, start + subsystem.len())),
            ..self
        })
    }
}
