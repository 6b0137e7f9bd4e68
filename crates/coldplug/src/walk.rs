//! Finding the devices under a sysfs tree (rule R16).

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// Which devices to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every device the kernel announces.
    All,
    /// Only those that also have a `modalias` file (module loading is mostly driven by
    /// `MODALIAS`; a resync also replays the devices of a [`DeviceMatch`], see
    /// [`resync_devices`]).
    WithModalias,
}

/// Devices picked by what they are rather than by a `modalias` file: rules outside the
/// `MODALIAS` lookup load modules on their `add` events (udev's driver rules act on
/// `SUBSYSTEM=="tifm"`, `KERNEL=="mtd*ro"`, ...), so a resync must replay them too. A device
/// matches when its subsystem is one of `subsystems` or its name matches one of `names`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceMatch {
    /// Subsystems, by the name of their directory in sysfs (the last component of the
    /// device's `subsystem` link), e.g. `tifm`.
    pub subsystems: Vec<String>,
    /// Globs on the device's kernel name (its directory's name, e.g. `mtd0ro`): `*` matches
    /// any run of characters, `?` any one; every other character matches itself.
    pub names: Vec<String>,
}

impl DeviceMatch {
    /// Matches nothing.
    pub fn is_empty(&self) -> bool {
        self.subsystems.is_empty() && self.names.is_empty()
    }

    /// Whether the device at `dir` matches (by its name, then by its `subsystem` link; a link
    /// that cannot be read matches no subsystem).
    pub fn matches(&self, dir: &Path) -> bool {
        let by_name = dir.file_name().is_some_and(|name| {
            self.names
                .iter()
                .any(|glob| glob_matches(glob.as_bytes(), name.as_bytes()))
        });
        by_name
            || (!self.subsystems.is_empty()
                && subsystem(dir).is_some_and(|subsystem| {
                    self.subsystems
                        .iter()
                        .any(|s| s.as_bytes() == subsystem.as_bytes())
                }))
    }
}

/// The subsystem of the device at `dir`: the last component of its `subsystem` link.
pub fn subsystem(dir: &Path) -> Option<OsString> {
    let target = std::fs::read_link(dir.join("subsystem")).ok()?;
    Some(target.file_name()?.to_os_string())
}

/// Whether `name` matches `glob` (`*`: any run of bytes, `?`: any one byte). Iterative, in
/// time proportional to the product of the lengths at worst: names come from sysfs.
fn glob_matches(glob: &[u8], name: &[u8]) -> bool {
    let (mut g, mut n) = (0, 0);
    // The last `*` seen, and where in `name` the run it matches currently ends.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&byte) = name.get(n) {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == b'?' || c == byte => {
                g += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more byte and try again from there.
                Some((star_g, star_n)) => {
                    g = star_g + 1;
                    n = star_n + 1;
                    star = Some((star_g, star_n + 1));
                }
                None => return false,
            },
        }
    }
    glob.get(g..).unwrap_or_default().iter().all(|&c| c == b'*')
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
///
/// Blocking (it reads directories and links): in async code, call it off the runtime's
/// worker threads.
pub fn devices(sysfs: &Path, select: Select) -> Walk {
    walk(sysfs, |dir| select == Select::All || has_modalias(dir))
}

/// The devices a resync replays: those with a `modalias` file and those `also` matches, in
/// the order of [`devices`]. Blocking, like [`devices`].
pub fn resync_devices(sysfs: &Path, also: &DeviceMatch) -> Walk {
    walk(sysfs, |dir| has_modalias(dir) || also.matches(dir))
}

/// Whether the device announces a `MODALIAS`: it has a `modalias` file, or its `uevent` file
/// holds a `MODALIAS=` line (CPUs: the kernel adds theirs to the event only, and the
/// `modalias` file is their parent's).
fn has_modalias(dir: &Path) -> bool {
    if std::fs::symlink_metadata(dir.join("modalias")).is_ok_and(|m| m.file_type().is_file()) {
        return true;
    }
    // A device's uevent text is a few hundred bytes; read no more than a page.
    let mut text = Vec::with_capacity(512);
    std::fs::File::open(dir.join("uevent"))
        .and_then(|file| io::Read::read_to_end(&mut io::Read::take(file, 4096), &mut text))
        .is_ok_and(|_| {
            text.split(|b| *b == b'\n')
                .any(|line| line.starts_with(b"MODALIAS="))
        })
}

/// The devices under `sysfs/devices` that `keep` accepts.
fn walk(sysfs: &Path, keep: impl Fn(&Path) -> bool) -> Walk {
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
        if kind("uevent").is_ok_and(|t| t.is_file())
            && kind("subsystem").is_ok_and(|t| t.is_symlink())
            && keep(dir)
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
    fn a_device_with_its_modalias_only_in_its_uevent_is_one_with_a_modalias() {
        // /sys/devices/system/cpu/cpu0: MODALIAS=cpu:type:… in the event, no modalias file.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        device(root, "devices/system/cpu/cpu0", false);
        fs::write(
            root.join("devices/system/cpu/cpu0/uevent"),
            "DRIVER=processor\nMODALIAS=cpu:type:x86,ven0000fam0006mod003F:feature:,0080\n",
        )
        .unwrap();
        device(root, "devices/system/memory/memory0", false);
        fs::write(
            root.join("devices/system/memory/memory0/uevent"),
            "DEVTYPE=x\n",
        )
        .unwrap();
        let walk = devices(root, Select::WithModalias);
        let rel: Vec<_> = walk
            .devices
            .iter()
            .map(|d| devpath(root, d).display().to_string())
            .collect();
        assert_eq!(rel, ["/devices/system/cpu/cpu0"]);
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
    fn globs_match_runs_and_single_characters_without_backtracking_blowup() {
        for (glob, name, expected) in [
            ("mtd*ro", "mtd0ro", true),
            ("mtd*ro", "mtdro", true),
            ("mtd*ro", "mtd12roro", true),
            ("mtd*ro", "mtd0rox", false),
            ("mtd*ro", "xmtd0ro", false),
            ("mtd?ro", "mtd0ro", true),
            ("mtd?ro", "mtd10ro", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a**b", "ab", true),
        ] {
            assert_eq!(
                glob_matches(glob.as_bytes(), name.as_bytes()),
                expected,
                "{glob:?} on {name:?}"
            );
        }
        let long = "a".repeat(4096);
        assert!(!glob_matches(b"*a*a*a*a*a*a*b", long.as_bytes()));
    }

    #[test]
    fn a_resync_lists_devices_with_a_modalias_and_those_matched_by_subsystem_or_name() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        device(root, "devices/pci0000:00/0000:00:01.0", true);
        device(root, "devices/pci0000:00/0000:00:02.0", false);
        for (rel, subsystem) in [
            ("devices/pci0000:00/0000:00:02.0/tifm0:1", "tifm"),
            ("devices/virtual/mtd/mtd0", "mtd"),
            ("devices/virtual/mtd/mtd0ro", "mtd"),
        ] {
            fs::create_dir_all(root.join(rel)).unwrap();
            fs::write(root.join(rel).join("uevent"), "").unwrap();
            std::os::unix::fs::symlink(
                format!("../../../../bus/{subsystem}"),
                root.join(rel).join("subsystem"),
            )
            .unwrap();
        }
        let also = DeviceMatch {
            subsystems: vec!["tifm".into()],
            names: vec!["mtd*ro".into()],
        };
        let rel = |walk: Walk| -> Vec<String> {
            walk.devices
                .iter()
                .map(|d| devpath(root, d).display().to_string())
                .collect()
        };
        assert_eq!(
            rel(resync_devices(root, &also)),
            [
                "/devices/pci0000:00/0000:00:01.0",
                "/devices/pci0000:00/0000:00:02.0/tifm0:1",
                "/devices/virtual/mtd/mtd0ro",
            ]
        );
        assert_eq!(
            rel(resync_devices(root, &DeviceMatch::default())),
            rel(devices(root, Select::WithModalias)),
            "with nothing to match, a resync lists the devices with a modalias"
        );
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
