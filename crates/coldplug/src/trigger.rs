//! Writing `add <uuid>` (or another action) into a device's `uevent` file (see
//! `docs/uevents.md#writing-uevent-files`).

use std::io::Write;
use std::path::Path;

use nix::errno::Errno;
use uevent::Action;

/// What a write into a `uevent` file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel took it and will send an `add` event tagged with the UUID.
    Written,
    /// The device is gone (`ENOENT`) or its driver refuses synthetic events (`ENODEV`): not an
    /// error, no event will come.
    Gone(Errno),
    /// The filesystem is read-only (`EROFS`): nothing more can be triggered.
    ReadOnly,
    /// Any other error: logged and counted; the walk goes on.
    Failed(Errno),
}

/// Writes `add <uuid>` into `dir/uevent`.
pub fn add(dir: &Path, uuid: &str) -> Outcome {
    write(dir, Action::Add, uuid)
}

/// Writes `<action> <uuid>` into `dir/uevent` (`udevadm trigger --action=…`).
pub fn write(dir: &Path, action: Action, uuid: &str) -> Outcome {
    let path = dir.join("uevent");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{action} {uuid}").as_bytes()));
    match result {
        Ok(()) => Outcome::Written,
        Err(err) => {
            let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
            match errno {
                Errno::ENOENT | Errno::ENODEV => {
                    tracing::debug!(path = %path.display(), %errno, "device gone or refuses synthetic events");
                    Outcome::Gone(errno)
                }
                Errno::EROFS => Outcome::ReadOnly,
                _ => {
                    tracing::warn!(path = %path.display(), %errno, "cannot trigger the device");
                    Outcome::Failed(errno)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_action_is_written_with_the_uuid() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("uevent"), "").unwrap();
        assert_eq!(write(tmp.path(), Action::Change, "u-2"), Outcome::Written);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("uevent")).unwrap(),
            "change u-2"
        );
    }

    #[test]
    fn writing_into_a_plain_file_is_written_and_says_add_with_the_uuid() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("uevent"), "").unwrap();
        assert_eq!(add(tmp.path(), "u-1"), Outcome::Written);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("uevent")).unwrap(),
            "add u-1"
        );
    }

    #[test]
    fn a_vanished_device_is_gone_not_failed() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            add(&tmp.path().join("vanished"), "u"),
            Outcome::Gone(Errno::ENOENT)
        );
    }

    #[test]
    fn a_uevent_that_cannot_be_written_is_failed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("uevent")).unwrap();
        assert_eq!(add(tmp.path(), "u"), Outcome::Failed(Errno::EISDIR));
    }
}
