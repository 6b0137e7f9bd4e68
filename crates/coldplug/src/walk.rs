//! Finding the devices under a sysfs tree (see `docs/uevents.md#walking-sysfs`).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Which devices to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every device the kernel announces.
    All,
    /// Only those that also have a `modalias` file (module loading is mostly driven by
    /// `MODALIAS`; a resync also replays the devices of a [`DeviceMatch`], see
    /// [`resync_list`]).
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

/// The devices found, parents before children, and what could not be read: every path held
/// whole. [`list`] finds the same devices and holds them in a [`DeviceList`], about a tenth of
/// the heap; a [`Pass`](crate::Pass) takes either.
#[derive(Debug, Default)]
pub struct Walk {
    /// Device directories, parents before children.
    pub devices: Vec<PathBuf>,
    /// Paths that could not be read, with the error; the walk went on past them.
    pub errors: Vec<(PathBuf, io::Error)>,
}

/// The devices found, as [`Walk`] has them, but held compactly ([`DeviceList`]).
#[derive(Debug, Default)]
pub struct Listing {
    /// Device directories, parents before children.
    pub devices: DeviceList,
    /// Paths that could not be read, with the error; the walk went on past them.
    pub errors: Vec<(PathBuf, io::Error)>,
}

impl Listing {
    /// Appends the kobjects `extra` (relative to `sysfs`, e.g. `module/parport_pc`) that exist
    /// and have a regular `uevent` file, after the devices (as [`add_extra`] for a [`Walk`]).
    pub fn add_extra(&mut self, sysfs: &Path, extra: &[PathBuf]) {
        for dir in extra.iter().map(|rel| sysfs.join(rel)) {
            if dir.join("uevent").is_file() {
                self.devices.push(&dir);
            }
        }
    }
}

impl From<Walk> for Listing {
    fn from(walk: Walk) -> Listing {
        Listing {
            devices: walk.devices.iter().collect(),
            errors: walk.errors,
        }
    }
}

impl From<Listing> for Walk {
    fn from(listing: Listing) -> Walk {
        Walk {
            devices: listing.devices.iter().collect(),
            errors: listing.errors,
        }
    }
}

/// Device paths in the order they were pushed, held compactly: a walk lists parents before
/// children and siblings by name, so a path mostly repeats the one before it, and each is kept
/// as the length of the prefix it shares with the previous one and the bytes after it
/// (front coding). Every 32nd path is kept whole, so that [`DeviceList::get`] decodes at most
/// 32 entries. In a real or generated sysfs this is 10 to 20 bytes per device where a
/// `Vec<PathBuf>` takes the whole path plus 24 bytes (BENCH.md has the figures).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeviceList {
    /// Entries: the shared prefix's length, the rest's length (both LEB128), the rest.
    bytes: Vec<u8>,
    /// Where entries 0, 32, 64, ... start in `bytes` (they share no prefix).
    restarts: Vec<usize>,
    len: usize,
    /// The last path pushed, to front-code the next one.
    last: Vec<u8>,
}

/// Every this many entries, a [`DeviceList`] keeps a path whole.
const RESTART: usize = 32;

impl DeviceList {
    /// An empty list.
    pub fn new() -> DeviceList {
        DeviceList::default()
    }

    /// How many paths.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No paths.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `path`.
    pub fn push(&mut self, path: &Path) {
        let path = path.as_os_str().as_bytes();
        let shared = if self.len.is_multiple_of(RESTART) {
            self.restarts.push(self.bytes.len());
            0
        } else {
            self.last
                .iter()
                .zip(path)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let rest = path.get(shared..).unwrap_or_default();
        push_varint(&mut self.bytes, shared);
        push_varint(&mut self.bytes, rest.len());
        self.bytes.extend_from_slice(rest);
        self.last.truncate(shared);
        self.last.extend_from_slice(rest);
        self.len += 1;
    }

    /// The `index`-th path.
    pub fn get(&self, index: usize) -> Option<PathBuf> {
        if index >= self.len {
            return None;
        }
        let mut at = *self.restarts.get(index / RESTART)?;
        let mut path = Vec::new();
        for _ in 0..=index % RESTART {
            at = self.decode(at, &mut path)?;
        }
        Some(PathBuf::from(OsString::from_vec(path)))
    }

    /// The paths, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            at: 0,
            left: self.len,
            path: Vec::new(),
        }
    }

    /// Bytes of heap the list holds (its buffers' capacity).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.restarts.capacity() * std::mem::size_of::<usize>()
            + self.last.capacity()
    }

    /// Gives back the buffers' spare capacity.
    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.restarts.shrink_to_fit();
    }

    /// Decodes the entry at `at` onto `path` (the entry before it); where the next one starts.
    fn decode(&self, at: usize, path: &mut Vec<u8>) -> Option<usize> {
        let (shared, at) = read_varint(&self.bytes, at)?;
        let (len, at) = read_varint(&self.bytes, at)?;
        let rest = self.bytes.get(at..at.checked_add(len)?)?;
        path.truncate(shared);
        path.extend_from_slice(rest);
        Some(at + len)
    }
}

impl std::fmt::Debug for DeviceList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceList")
            .field("len", &self.len)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl<P: AsRef<Path>> FromIterator<P> for DeviceList {
    fn from_iter<I: IntoIterator<Item = P>>(paths: I) -> DeviceList {
        let mut list = DeviceList::new();
        list.extend(paths);
        list
    }
}

impl<P: AsRef<Path>> Extend<P> for DeviceList {
    fn extend<I: IntoIterator<Item = P>>(&mut self, paths: I) {
        for path in paths {
            self.push(path.as_ref());
        }
    }
}

impl<'a> IntoIterator for &'a DeviceList {
    type Item = PathBuf;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The paths of a [`DeviceList`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    list: &'a DeviceList,
    at: usize,
    left: usize,
    path: Vec<u8>,
}

impl Iterator for Iter<'_> {
    type Item = PathBuf;

    fn next(&mut self) -> Option<PathBuf> {
        if self.left == 0 {
            return None;
        }
        self.at = self.list.decode(self.at, &mut self.path)?;
        self.left -= 1;
        Some(PathBuf::from(OsStr::from_bytes(&self.path)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

fn push_varint(bytes: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        bytes.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
}

fn read_varint(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(at)?;
        at += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some((n, at));
        }
        shift += 7;
    }
}

/// Walks `sysfs/devices` without following symlinks and lists every device the kernel
/// announces: a directory with a regular `uevent` file and a `subsystem` link. Directories with
/// a `uevent` file but no subsystem (`/devices/platform`, `/devices/system/cpu`, ...) are
/// kobjects whose events the kernel filters out (`dev_uevent_filter`): writing into their
/// `uevent` succeeds but sends nothing, so they are not listed. A directory is listed before
/// anything below it; siblings are sorted by name.
///
/// Blocking (it reads directories and links): in async code, call it off the runtime's
/// worker threads. [`list`] finds the same devices and holds them compactly.
pub fn devices(sysfs: &Path, select: Select) -> Walk {
    let mut devices = Vec::new();
    let errors = walk(
        sysfs,
        |dir, seen| select == Select::All || has_modalias(dir, seen),
        |dir| devices.push(dir.to_path_buf()),
    );
    Walk { devices, errors }
}

/// The devices of [`devices`], held compactly. Blocking, like [`devices`].
pub fn list(sysfs: &Path, select: Select) -> Listing {
    let mut devices = DeviceList::new();
    let errors = walk(
        sysfs,
        |dir, seen| select == Select::All || has_modalias(dir, seen),
        |dir| devices.push(dir),
    );
    devices.shrink_to_fit();
    Listing { devices, errors }
}

/// The devices a resync replays: those with a `modalias` file and those `also` matches, in
/// the order of [`devices`], held compactly. Blocking, like [`devices`].
pub fn resync_list(sysfs: &Path, also: &DeviceMatch) -> Listing {
    let mut devices = DeviceList::new();
    let errors = walk(
        sysfs,
        |dir, seen| has_modalias(dir, seen) || also.matches(dir),
        |dir| devices.push(dir),
    );
    devices.shrink_to_fit();
    Listing { devices, errors }
}

/// What a directory's entries say about it.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// A regular `uevent` file.
    uevent: bool,
    /// A `subsystem` symlink.
    subsystem: bool,
    /// A regular `modalias` file.
    modalias: bool,
}

/// Whether the device announces a `MODALIAS`: it has a `modalias` file, or its `uevent` file
/// holds a `MODALIAS=` line (CPUs: the kernel adds theirs to the event only, and the
/// `modalias` file is their parent's).
fn has_modalias(dir: &Path, seen: &Seen) -> bool {
    if seen.modalias {
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

/// One directory being walked: the names of its subdirectories, sorted, and the next to visit.
#[derive(Default)]
struct Frame {
    /// The names, one after the other.
    names: Vec<u8>,
    /// Where each name is in `names` (start, length), sorted by name.
    spans: Vec<(u32, u32)>,
    next: usize,
}

impl Frame {
    /// Reads the directory `dir`: keeps the names of its subdirectories (symlinks are not
    /// followed) and tells what it has. One `getdents` pass: the entries' types come with
    /// them, so no file in it is `stat`ed.
    fn read(&mut self, dir: &Path, errors: &mut Vec<(PathBuf, io::Error)>) -> Seen {
        self.names.clear();
        self.spans.clear();
        self.next = 0;
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                failed(errors, dir.to_path_buf(), err);
                // It may still be searchable: look the files up by name.
                let kind =
                    |name: &str| std::fs::symlink_metadata(dir.join(name)).map(|m| m.file_type());
                return Seen {
                    uevent: kind("uevent").is_ok_and(|t| t.is_file()),
                    subsystem: kind("subsystem").is_ok_and(|t| t.is_symlink()),
                    modalias: kind("modalias").is_ok_and(|t| t.is_file()),
                };
            }
        };
        let mut seen = Seen::default();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    failed(errors, dir.to_path_buf(), err);
                    continue;
                }
            };
            let name = entry.file_name();
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(err) => {
                    failed(errors, dir.join(&name), err);
                    continue;
                }
            };
            match name.as_bytes() {
                b"uevent" => seen.uevent = kind.is_file(),
                b"subsystem" => seen.subsystem = kind.is_symlink(),
                b"modalias" => seen.modalias = kind.is_file(),
                _ => {}
            }
            if kind.is_dir() {
                let (Ok(start), Ok(len)) =
                    (u32::try_from(self.names.len()), u32::try_from(name.len()))
                else {
                    failed(
                        errors,
                        dir.to_path_buf(),
                        io::Error::other("too many entries to walk"),
                    );
                    break;
                };
                self.names.extend_from_slice(name.as_bytes());
                self.spans.push((start, len));
            }
        }
        let names = &self.names;
        let name = |&(start, len): &(u32, u32)| {
            names
                .get(start as usize..start as usize + len as usize)
                .unwrap_or_default()
        };
        self.spans.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        seen
    }

    /// The next subdirectory's name.
    fn next_name(&mut self) -> Option<&OsStr> {
        let &(start, len) = self.spans.get(self.next)?;
        self.next += 1;
        let name = self
            .names
            .get(start as usize..start as usize + len as usize)?;
        Some(OsStr::from_bytes(name))
    }
}

fn failed(errors: &mut Vec<(PathBuf, io::Error)>, path: PathBuf, err: io::Error) {
    tracing::debug!(path = %path.display(), error = %err, "cannot read during the sysfs walk");
    errors.push((path, err));
}

/// Walks `sysfs/devices` depth first, parents before children, siblings by name, without
/// following symlinks, and calls `found` with each device directory that `keep` accepts. Holds
/// one path and the subdirectory names of the directories on it, nothing per device found.
/// Returns what could not be read.
fn walk(
    sysfs: &Path,
    keep: impl Fn(&Path, &Seen) -> bool,
    mut found: impl FnMut(&Path),
) -> Vec<(PathBuf, io::Error)> {
    let mut errors = Vec::new();
    let mut path = sysfs.join("devices");
    // The root itself may be a symlink (followed), and must be a directory.
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return errors,
        Err(err) => {
            failed(&mut errors, path, err);
            return errors;
        }
    }
    // `frames[..depth]` are the directories on `path`; deeper ones are kept for reuse.
    let mut frames: Vec<Frame> = Vec::new();
    let mut depth = 0;
    loop {
        // `path` is a directory not visited yet: read it, list it, go down into it.
        if frames.len() == depth {
            frames.push(Frame::default());
        }
        let Some(frame) = frames.get_mut(depth) else {
            return errors;
        };
        let seen = frame.read(&path, &mut errors);
        if seen.uevent && seen.subsystem && keep(&path, &seen) {
            found(&path);
        }
        depth += 1;
        // Then the next subdirectory of the deepest directory that has one left.
        loop {
            let Some(frame) = depth.checked_sub(1).and_then(|d| frames.get_mut(d)) else {
                return errors;
            };
            if let Some(name) = frame.next_name() {
                path.push(name);
                break;
            }
            depth -= 1;
            path.pop();
        }
    }
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
        let rel = |devices: &DeviceList| -> Vec<String> {
            devices
                .iter()
                .map(|d| devpath(root, &d).display().to_string())
                .collect()
        };
        assert_eq!(
            rel(&resync_list(root, &also).devices),
            [
                "/devices/pci0000:00/0000:00:01.0",
                "/devices/pci0000:00/0000:00:02.0/tifm0:1",
                "/devices/virtual/mtd/mtd0ro",
            ]
        );
        assert_eq!(
            rel(&resync_list(root, &DeviceMatch::default()).devices),
            rel(&list(root, Select::WithModalias).devices),
            "with nothing to match, a resync lists the devices with a modalias"
        );
    }

    #[test]
    fn a_device_list_gives_back_every_path_by_index_and_in_order() {
        let mut paths: Vec<PathBuf> = Vec::new();
        let long = "l".repeat(300);
        for i in 0..200 {
            paths.push(format!("/sys/devices/pci0000:00/0000:00:{i:02x}.0").into());
            paths.push(format!("/sys/devices/pci0000:00/0000:00:{i:02x}.0/{long}/x{i}").into());
            paths.push(format!("/sys/devices/virtual/tty/tty{i}").into());
        }
        paths.push(PathBuf::from(OsStr::from_bytes(b"/sys/\xff\xfe")));
        paths.push(PathBuf::new());
        paths.push("/".into());
        paths.push("/sys/devices/virtual/tty/tty1".into());
        let list: DeviceList = paths.iter().collect();
        assert_eq!(list.len(), paths.len());
        assert_eq!(list.iter().collect::<Vec<_>>(), paths);
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(list.get(i).as_ref(), Some(path), "{i}");
        }
        assert_eq!(list.get(paths.len()), None);
        let walk: Walk = Listing {
            devices: list.clone(),
            errors: Vec::new(),
        }
        .into();
        assert_eq!(walk.devices, paths);
        assert_eq!(Listing::from(walk).devices, list);
        assert!(DeviceList::new().iter().next().is_none());
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
            [tmp.path().join("devices/pci0000:00"), module.clone()]
        );
        let mut listing = Listing {
            devices: [tmp.path().join("devices/pci0000:00")].iter().collect(),
            errors: Vec::new(),
        };
        listing.add_extra(
            tmp.path(),
            &["module/parport_pc".into(), "module/absent".into()],
        );
        assert_eq!(Walk::from(listing).devices, walk.devices);
    }
}
