//! A generated sysfs tree of any number of devices, shaped like a real one, and a counting
//! global allocator: shared by the heap test (`tests/memory.rs`) and the benchmark
//! (`benches/huge_sysfs.rs`), which include this file.
//!
//! The tree has what the walk and `udevadm trigger` look at: under `devices/`, nested device
//! directories with a regular `uevent` file, a `subsystem` link (into `bus/<bus>` or
//! `class/<class>`), a `modalias` file for about half of them and an empty `power` directory
//! (not a device: the walk reads it and skips it, as in a real tree), grouping directories
//! without `uevent` (`net/`, `block/`, `ata1/`, ...) and bare kobjects (`pci0000:00`, `uevent`
//! but no subsystem, never listed); and for udevadm, which enumerates through them, the links
//! `bus/<bus>/devices/<name>` and `class/<class>/<name>`. Writes into its `uevent` files are
//! writes into regular files.

#![allow(
    dead_code,
    reason = "the test and the bench each use part of these helpers"
)]

pub mod heap;

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use coldplug::walk::{Select, list};
use coldplug::{Pass, PassKind, PassReport, UuidSource};
use walkdir::WalkDir;

/// A temporary directory for a tree: on `/dev/shm` (tmpfs) when there is one, where a tree of
/// 100,000 devices is made in seconds (minutes on a busy ext4) and which, like sysfs, lives in
/// memory; else in the default temporary directory. `COLDPLUG_TREE_DIR` overrides both.
pub fn tempdir() -> tempfile::TempDir {
    let builder = || {
        let mut builder = tempfile::Builder::new();
        builder.prefix("coldplug-huge-sysfs.");
        builder
    };
    if let Some(dir) = std::env::var_os("COLDPLUG_TREE_DIR") {
        return builder()
            .tempdir_in(dir)
            .expect("tempdir in COLDPLUG_TREE_DIR");
    }
    builder()
        .tempdir_in("/dev/shm")
        .or_else(|_| builder().tempdir())
        .expect("tempdir")
}

/// The daemon's coldplug pass over the tree at `root` (the walk the actor makes, then the
/// pass), playing the kernel: each write is answered as soon as it returns (the UUIDs of
/// `uuid_file` are predictable, [`nth_uuid`]). `window`: the pacing (`None`: unpaced, every
/// device written before any answer).
pub fn replay(root: &Path, uuid_file: &Path, window: Option<usize>) -> PassReport {
    let walk = list(root, Select::All);
    let mut pass = Pass::new(PassKind::Coldplug, root, walk, window);
    let mut uuids = UuidSource::new(uuid_file);
    let mut answered = 0;
    loop {
        let written = pass.pump(&mut uuids) as u64;
        for k in answered + 1..=answered + written {
            assert!(pass.answer(nth_uuid(k).as_bytes()), "write {k} is ours");
        }
        answered += written;
        if written == 0 || pass.is_done() {
            break;
        }
    }
    pass.finish()
}

/// The prefix of the UUIDs of a [`uuid_file`] source (the source's first 24 characters).
pub const UUID_PREFIX: &str = "0badc0de-0000-4000-8000-";

/// Writes a fixed UUID into `dir/uuid` and returns that path: a `UuidSource` made from it hands
/// out `UUID_PREFIX` followed by 1, 2, 3, ... in 12 hex digits ([`nth_uuid`]), so a test can
/// answer a pass's writes without reading them back.
pub fn uuid_file(dir: &Path) -> PathBuf {
    let path = dir.join("uuid");
    std::fs::write(&path, format!("{UUID_PREFIX}000000000000\n")).expect("uuid file");
    path
}

/// The `k`-th UUID (from 1) of a source made from [`uuid_file`].
pub fn nth_uuid(k: u64) -> String {
    format!("{UUID_PREFIX}{k:012x}")
}

/// What [`build`] made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Devices (what the walk lists).
    pub devices: usize,
    /// Devices with a `modalias` file.
    pub modalias_files: usize,
    /// Devices whose `uevent` holds a `MODALIAS=` line and that have no `modalias` file (CPUs).
    pub modalias_in_uevent: usize,
    /// The deepest device, in path components below the tree's root.
    pub max_depth: usize,
}

/// Builds a tree of exactly `n` devices under `root` (`root/devices`, `root/bus`,
/// `root/class`). A round of 37 devices repeats: a USB controller with two ports, each with an
/// interface, an input device and its event device; a network card; a SATA controller with a
/// disk and two partitions; a virtio disk; three plain PCI functions; two CPUs; three memory
/// blocks; two virtual terminals; a loop device; two serial ports with their ttys. PCI
/// functions go 256 to a root bridge (`pciDDDD:00`); CPUs, memory blocks, virtual terminals and
/// loop devices share one directory each, the widest (memory) holding 3/37 of the devices.
pub fn build(root: &Path, n: usize) -> io::Result<Shape> {
    let mut g = Gen {
        root,
        n,
        shape: Shape::default(),
        made_dirs: HashSet::new(),
        counters: Counters::default(),
    };
    g.bare("devices/platform")?;
    g.bare("devices/system/cpu")?;
    g.bare("devices/system/memory")?;
    while !g.full() {
        g.usb()?;
        g.net()?;
        g.storage()?;
        g.virtio()?;
        for _ in 0..3 {
            g.pci()?;
        }
        for _ in 0..2 {
            let c = g.counters.next(Kind::Cpu);
            g.device(
                &format!("devices/system/cpu/cpu{c}"),
                Sub::Bus("cpu"),
                None,
                "DRIVER=processor\nMODALIAS=cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0002,0003\n",
            )?;
        }
        for _ in 0..3 {
            let m = g.counters.next(Kind::Memory);
            g.device(
                &format!("devices/system/memory/memory{m}"),
                Sub::Bus("memory"),
                None,
                "",
            )?;
        }
        for _ in 0..2 {
            let t = g.counters.next(Kind::Tty);
            g.device(
                &format!("devices/virtual/tty/tty{t}"),
                Sub::Class("tty"),
                None,
                &format!("MAJOR=4\nMINOR={t}\nDEVNAME=tty{t}\n"),
            )?;
        }
        let l = g.counters.next(Kind::Loop);
        g.device(
            &format!("devices/virtual/block/loop{l}"),
            Sub::Class("block"),
            None,
            &format!("MAJOR=7\nMINOR={l}\nDEVNAME=loop{l}\nDEVTYPE=disk\n"),
        )?;
        for _ in 0..2 {
            let s = g.counters.next(Kind::Serial);
            let port = format!("devices/platform/serial8250.{s}");
            if g.device(
                &port,
                Sub::Bus("platform"),
                Some("platform:serial8250"),
                "DRIVER=serial8250\nMODALIAS=platform:serial8250\n",
            )? {
                g.device(
                    &format!("{port}/tty/ttyS{s}"),
                    Sub::Class("tty"),
                    None,
                    &format!("MAJOR=4\nMINOR={}\nDEVNAME=ttyS{s}\n", 64 + s),
                )?;
            }
        }
    }
    Ok(g.shape)
}

#[derive(Clone, Copy)]
enum Sub {
    Bus(&'static str),
    Class(&'static str),
}

#[derive(Clone, Copy)]
enum Kind {
    Pci,
    Usb,
    Input,
    Net,
    Scsi,
    Disk,
    Virtio,
    Cpu,
    Memory,
    Tty,
    Loop,
    Serial,
}

#[derive(Default)]
struct Counters([usize; 12]);

impl Counters {
    fn next(&mut self, kind: Kind) -> usize {
        let slot = &mut self.0[kind as usize];
        let n = *slot;
        *slot += 1;
        n
    }
}

struct Gen<'a> {
    root: &'a Path,
    n: usize,
    shape: Shape,
    made_dirs: HashSet<String>,
    counters: Counters,
}

impl Gen<'_> {
    fn full(&self) -> bool {
        self.shape.devices >= self.n
    }

    /// A kobject with a `uevent` file but no subsystem: never announced, never listed.
    fn bare(&mut self, rel: &str) -> io::Result<()> {
        let dir = self.root.join(rel);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("uevent"), "")
    }

    /// A PCI function: its path, or `None` when the tree is full.
    fn pci(&mut self) -> io::Result<Option<String>> {
        let i = self.counters.next(Kind::Pci);
        let (domain, slot, function) = (i / 256, (i % 256) / 8, i % 8);
        let bridge = format!("devices/pci{domain:04x}:00");
        if i.is_multiple_of(256) {
            self.bare(&bridge)?;
        }
        let rel = format!("{bridge}/{domain:04x}:00:{slot:02x}.{function}");
        let made = self.device(
            &rel,
            Sub::Bus("pci"),
            Some(&format!(
                "pci:v00008086d0000{:04X}sv00001AF4sd00001100bc01sc06i01",
                i & 0xffff
            )),
            &format!(
                "DRIVER=ahci\nPCI_CLASS=10601\nPCI_ID=8086:{:04X}\nPCI_SLOT_NAME={domain:04x}:00:{slot:02x}.{function}\n",
                i & 0xffff
            ),
        )?;
        Ok(made.then_some(rel))
    }

    fn usb(&mut self) -> io::Result<()> {
        let Some(pci) = self.pci()? else {
            return Ok(());
        };
        let u = self.counters.next(Kind::Usb) + 1;
        let hub = format!("{pci}/usb{u}");
        if !self.device(&hub, Sub::Bus("usb"), None, "DEVTYPE=usb_device\n")? {
            return Ok(());
        }
        for p in 1..=2 {
            let port = format!("{hub}/{u}-{p}");
            if !self.device(&port, Sub::Bus("usb"), None, "DEVTYPE=usb_device\n")? {
                return Ok(());
            }
            let interface = format!("{port}/{u}-{p}:1.0");
            if !self.device(
                &interface,
                Sub::Bus("usb"),
                Some("usb:v046DpC52Bd1211dc00dsc00dp00ic03isc01ip01in00"),
                "DEVTYPE=usb_interface\nINTERFACE=3/1/1\n",
            )? {
                return Ok(());
            }
            let i = self.counters.next(Kind::Input);
            let input = format!("{interface}/input/input{i}");
            if !self.device(
                &input,
                Sub::Class("input"),
                Some("input:b0003v046DpC52Be0111-e0,1,4,11,14,k71,72,73,ram4,lsfw"),
                "PRODUCT=3/46d/c52b/111\n",
            )? {
                return Ok(());
            }
            self.device(
                &format!("{input}/event{i}"),
                Sub::Class("input"),
                None,
                &format!("MAJOR=13\nMINOR={}\nDEVNAME=input/event{i}\n", 64 + i),
            )?;
        }
        Ok(())
    }

    fn net(&mut self) -> io::Result<()> {
        let Some(pci) = self.pci()? else {
            return Ok(());
        };
        let i = self.counters.next(Kind::Net);
        self.device(
            &format!("{pci}/net/eth{i}"),
            Sub::Class("net"),
            None,
            &format!("INTERFACE=eth{i}\nIFINDEX={}\n", i + 2),
        )?;
        Ok(())
    }

    fn storage(&mut self) -> io::Result<()> {
        let Some(pci) = self.pci()? else {
            return Ok(());
        };
        let h = self.counters.next(Kind::Scsi);
        let host = format!("{pci}/ata{}/host{h}", h + 1);
        if !self.device(&host, Sub::Bus("scsi"), None, "DEVTYPE=scsi_host\n")? {
            return Ok(());
        }
        let target = format!("{host}/target{h}:0:0");
        if !self.device(&target, Sub::Bus("scsi"), None, "DEVTYPE=scsi_target\n")? {
            return Ok(());
        }
        let lun = format!("{target}/{h}:0:0:0");
        if !self.device(
            &lun,
            Sub::Bus("scsi"),
            Some("scsi:t-0x00"),
            "DEVTYPE=scsi_device\nDRIVER=sd\nMODALIAS=scsi:t-0x00\n",
        )? {
            return Ok(());
        }
        let name = format!("sd{}", disk_letters(self.counters.next(Kind::Disk)));
        let disk = format!("{lun}/block/{name}");
        if !self.device(
            &disk,
            Sub::Class("block"),
            None,
            &format!("MAJOR=8\nMINOR=0\nDEVNAME={name}\nDEVTYPE=disk\n"),
        )? {
            return Ok(());
        }
        for p in 1..=2 {
            if !self.device(
                &format!("{disk}/{name}{p}"),
                Sub::Class("block"),
                None,
                &format!("MAJOR=8\nMINOR={p}\nDEVNAME={name}{p}\nDEVTYPE=partition\nPARTN={p}\n"),
            )? {
                return Ok(());
            }
        }
        Ok(())
    }

    fn virtio(&mut self) -> io::Result<()> {
        let Some(pci) = self.pci()? else {
            return Ok(());
        };
        let v = self.counters.next(Kind::Virtio);
        let dev = format!("{pci}/virtio{v}");
        if self.device(
            &dev,
            Sub::Bus("virtio"),
            Some("virtio:d00000002v00001AF4"),
            "DRIVER=virtio_blk\nVIRTIO_ID=0x0002\n",
        )? {
            let name = format!("vd{}", disk_letters(v));
            self.device(
                &format!("{dev}/block/{name}"),
                Sub::Class("block"),
                None,
                &format!("MAJOR=254\nMINOR=0\nDEVNAME={name}\nDEVTYPE=disk\n"),
            )?;
        }
        Ok(())
    }

    /// The device `rel` (below the root, e.g. `devices/virtual/tty/tty0`), if the tree is not
    /// full yet: `true` if made.
    fn device(
        &mut self,
        rel: &str,
        sub: Sub,
        modalias: Option<&str>,
        uevent: &str,
    ) -> io::Result<bool> {
        if self.full() {
            return Ok(false);
        }
        let dir = self.root.join(rel);
        // The directories on the way (grouping directories such as `net/` or `block/`).
        let parent = rel.rsplit_once('/').map_or("", |(parent, _)| parent);
        if !self.made_dirs.contains(parent) {
            std::fs::create_dir_all(self.root.join(parent))?;
            self.made_dirs.insert(parent.to_owned());
        }
        std::fs::create_dir(&dir)?;
        std::fs::create_dir(dir.join("power"))?;
        std::fs::write(dir.join("uevent"), uevent)?;
        let depth = rel.split('/').count();
        let up = "../".repeat(depth);
        let name = rel.rsplit('/').next().unwrap_or(rel);
        match sub {
            Sub::Bus(bus) => {
                let bus_dir = format!("bus/{bus}/devices");
                if self.made_dirs.insert(bus_dir.clone()) {
                    std::fs::create_dir_all(self.root.join(&bus_dir))?;
                }
                symlink(format!("{up}bus/{bus}"), dir.join("subsystem"))?;
                symlink(
                    format!("../../../{rel}"),
                    self.root.join(&bus_dir).join(name),
                )?;
            }
            Sub::Class(class) => {
                let class_dir = format!("class/{class}");
                if self.made_dirs.insert(class_dir.clone()) {
                    std::fs::create_dir_all(self.root.join(&class_dir))?;
                }
                symlink(format!("{up}class/{class}"), dir.join("subsystem"))?;
                symlink(
                    format!("../../{rel}"),
                    self.root.join(&class_dir).join(name),
                )?;
            }
        }
        if let Some(modalias) = modalias {
            std::fs::write(dir.join("modalias"), format!("{modalias}\n"))?;
            self.shape.modalias_files += 1;
        } else if uevent.contains("MODALIAS=") {
            self.shape.modalias_in_uevent += 1;
        }
        self.shape.devices += 1;
        self.shape.max_depth = self.shape.max_depth.max(depth);
        Ok(true)
    }
}

/// `a`, `b`, ... `z`, `aa`, `ab`, ...: the letters of the `i`-th disk's name.
fn disk_letters(mut i: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// The devices under `sysfs/devices` that `keep` accepts, as `walk::devices` found them before
/// issue #16 (`walkdir` sorted by name, and an `lstat` of `uevent` and `subsystem` in every
/// directory), with the number of errors: the reference of `tests/walk_reference.rs`, and the
/// "before" of the benchmark.
pub fn reference(sysfs: &Path, keep: impl Fn(&Path) -> bool) -> (Vec<PathBuf>, usize) {
    let mut devices = Vec::new();
    let mut errors = 0;
    for entry in WalkDir::new(sysfs.join("devices"))
        .follow_links(false)
        .sort_by_file_name()
    {
        let Ok(entry) = entry else {
            errors += 1;
            continue;
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
            devices.push(dir.to_path_buf());
        }
    }
    (devices, errors)
}

/// Whether the device has a modalias, as the walk told before issue #16.
pub fn reference_has_modalias(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join("modalias")).is_ok_and(|m| m.file_type().is_file())
        || std::fs::read(dir.join("uevent")).is_ok_and(|text| {
            text.split(|b| *b == b'\n')
                .any(|line| line.starts_with(b"MODALIAS="))
        })
}

/// Counts the directories under `root/devices` (for the shape's report; not timed).
pub fn count_directories(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.join("devices")];
    while let Some(dir) = stack.pop() {
        count += 1;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
    count
}
