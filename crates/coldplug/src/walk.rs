//! Finding the devices under a sysfs tree (rule R16).

use std::io;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// Which devices to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every device the kernel announces.
    All,
    /// Only those that also have a `modalias` file (what a resynchronisation needs: module
    /// loading is driven by `MODALIAS`).
    WithModalias,
}

/// The devices found, parents before children, and what could not be read.
#[derive(Debug, Default)]
pub struct Walk {
    /// Device directories, parents before children.
    pub devices: Vec<PathBuf>,
    /// Paths that could not be read, with the error; the walk went on past them.
    pub errors: Vec<(PathBuf, io::Error)>,
}

/// Walks `sysfs/devices` without following symlinks and lists every device the kernel
/// announces: a directory with a regular `uevent` file and a `subsystem` link. Directories with
/// a `uevent` file but no subsystem (`/devices/platform`, `/devices/system/cpu`, ...) are
/// kobjects whose events the kernel filters out (`dev_uevent_filter`): writing into their
/// `uevent` succeeds but sends nothing, so they are not listed. A directory is listed before
/// anything below it; siblings are sorted by name.
pub fn devices(sysfs: &Path, select: Select) -> Walk {
    let mut walk = Walk::default();
    for entry in WalkDir::new(sysfs.join("devices"))
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                let err = err
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("filesystem loop"));
                tracing::debug!(path = %path.display(), error = %err, "cannot read during the sysfs walk");
                walk.errors.push((path, err));
                continue;
            }
        };
        if !entry.file_type().is_dir() {
            continue;
        }
        let dir = entry.path();
        let kind = |name: &str| std::fs::symlink_metadata(dir.join(name)).map(|m| m.file_type());
        let is_file = |name: &str| kind(name).is_ok_and(|t| t.is_file());
        if is_file("uevent")
            && kind("subsystem").is_ok_and(|t| t.is_symlink())
            && (select == Select::All || is_file("modalias"))
        {
            walk.devices.push(dir.to_path_buf());
        }
    }
    walk
}

/// The devpath of `dir` (what the kernel puts in `DEVPATH`): its path below `sysfs`, with a
/// leading `/`.
pub fn devpath(sysfs: &Path, dir: &Path) -> PathBuf {
    Path::new("/").join(dir.strip_prefix(sysfs).unwrap_or(dir))
}

/// Appends the kobjects `extra` (relative to `sysfs`, e.g. `module/parport_pc`) that exist
/// and have a regular `uevent` file, after the devices.
pub fn add_extra(walk: &mut Walk, sysfs: &Path, extra: &[PathBuf]) {
    walk.devices.extend(
        extra
            .iter()
            .map(|rel| sysfs.join(rel))
            .filter(|dir| dir.join("uevent").is_file()),
    );
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn device(root: &Path, rel: &str, modalias: bool) {
        let dir = root.join(rel);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("uevent"), "").unwrap();
        std::os::unix::fs::symlink("../../bus/pci", dir.join("subsystem")).unwrap();
        if modalias {
            fs::write(dir.join("modalias"), "pci:v1").unwrap();
        }
    }

    #[test]
    fn parents_come_before_children_and_symlinks_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        device(root, "devices/pci0000:00/0000:00:00.0", false);
        device(root, "devices/pci0000:00/0000:00:01.0", true);
        device(root, "devices/pci0000:00/0000:00:01.0/virtio0", true);
        device(root, "devices/platform/serial8250", true);
        fs::create_dir_all(root.join("devices/virtual/no-uevent")).unwrap();
        // A symlink loop like sysfs's `subsystem` links must not be followed.
        std::os::unix::fs::symlink(root.join("devices"), root.join("devices/platform/loop"))
            .unwrap();
        // A `uevent` that is a symlink is not a device's.
        fs::create_dir_all(root.join("devices/odd")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("devices/odd/uevent")).unwrap();
        std::os::unix::fs::symlink("../bus/x", root.join("devices/odd/subsystem")).unwrap();
        // A bare kobject (uevent but no subsystem) is never announced by the kernel.
        fs::write(root.join("devices/pci0000:00/uevent"), "").unwrap();

        let walk = devices(root, Select::All);
        let rel: Vec<_> = walk
            .devices
            .iter()
            .map(|d| devpath(root, d).display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "/devices/pci0000:00/0000:00:00.0",
                "/devices/pci0000:00/0000:00:01.0",
                "/devices/pci0000:00/0000:00:01.0/virtio0",
                "/devices/platform/serial8250",
            ]
        );
        assert!(walk.errors.is_empty(), "{:?}", walk.errors);

        let with_modalias = devices(root, Select::WithModalias);
        assert_eq!(with_modalias.devices.len(), 3);
    }

    #[test]
    fn a_missing_tree_is_reported_not_fatal() {
        let walk = devices(Path::new("/nonexistent/devmgr-sysfs"), Select::All);
        assert!(walk.devices.is_empty());
        assert_eq!(walk.errors.len(), 1);
    }

    #[test]
    fn extra_kobjects_are_replayed_after_the_devices_when_they_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let module = tmp.path().join("module/parport_pc");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("uevent"), "").unwrap();
        let mut walk = Walk {
            devices: vec![tmp.path().join("devices/pci0000:00")],
            errors: Vec::new(),
        };
        add_extra(
            &mut walk,
            tmp.path(),
            &["module/parport_pc".into(), "module/absent".into()],
        );
        assert_eq!(
            walk.devices,
            [tmp.path().join("devices/pci0000:00"), module]
        );
    }
}
