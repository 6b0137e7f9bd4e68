//! The walk against the one it replaced (issue #16): `walkdir` sorted by name without following
//! links, and a `stat` of `uevent` and `subsystem` in every directory. The same devices must
//! come out in the same order, on a generated tree and on odd cases, for every selection, and
//! the compact listing must decode to them.
#![allow(unsafe_code)]

mod huge_sysfs;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use coldplug::walk::{DeviceList, DeviceMatch, Select, devices, list, resync_list, subsystem};
use huge_sysfs::{reference, reference_has_modalias};

fn device(root: &Path, rel: &Path, subsystem: &str, modalias: bool) {
    let dir = root.join(rel);
    fs::create_dir_all(&dir).expect("the tree");
    fs::write(dir.join("uevent"), "").expect("the tree");
    symlink(format!("/bus/{subsystem}"), dir.join("subsystem")).expect("the tree");
    if modalias {
        fs::write(dir.join("modalias"), "x:y").expect("the tree");
    }
}

/// What the generated tree does not have: names that sort differently as bytes and as text,
/// names that are not UTF-8, paths longer than 128 bytes, links into the tree and loops, a
/// `uevent` or `subsystem` of the wrong type, a `modalias` directory.
fn odd_cases(root: &Path) {
    let odd = Path::new("devices/odd");
    for name in ["A", "a", "a-b", "a.b", "a0", "b", "é", "Z"] {
        device(root, &odd.join(name), "odd", name.len() == 1);
    }
    device(
        root,
        &odd.join(OsStr::from_bytes(b"not-utf8-\xff\xfe")),
        "odd",
        true,
    );
    let long: PathBuf = (0..12)
        .map(|i| format!("level-{i:02}-{}", "x".repeat(20)))
        .collect();
    for leaf in ["p", "q", "r"] {
        device(root, &odd.join(&long).join(leaf), "tifm", false);
    }
    symlink(root.join("devices"), root.join("devices/odd/loop")).expect("the tree");
    symlink("../odd/A", root.join("devices/odd/link-to-a")).expect("the tree");
    let wrong = root.join("devices/odd/wrong-types");
    fs::create_dir_all(wrong.join("uevent")).expect("the tree");
    symlink("/bus/x", wrong.join("subsystem")).expect("the tree");
    let wrong = root.join("devices/odd/uevent-link");
    fs::create_dir_all(&wrong).expect("the tree");
    symlink("/dev/null", wrong.join("uevent")).expect("the tree");
    symlink("/bus/x", wrong.join("subsystem")).expect("the tree");
    let wrong = root.join("devices/odd/subsystem-file");
    fs::create_dir_all(&wrong).expect("the tree");
    fs::write(wrong.join("uevent"), "").expect("the tree");
    fs::write(wrong.join("subsystem"), "").expect("the tree");
    let dir = root.join("devices/odd/modalias-dir");
    device(root, Path::new("devices/odd/modalias-dir"), "odd", false);
    fs::create_dir(dir.join("modalias")).expect("the tree");
}

fn decoded(list: &DeviceList) -> Vec<PathBuf> {
    let by_iter: Vec<PathBuf> = list.iter().collect();
    let by_index: Vec<PathBuf> = (0..list.len()).filter_map(|i| list.get(i)).collect();
    assert_eq!(by_iter, by_index);
    by_iter
}

#[test]
fn the_walk_lists_what_the_walkdir_walk_listed_in_the_same_order() {
    let tmp = huge_sysfs::tempdir();
    let root = tmp.path();
    let shape = huge_sysfs::build(root, 3_000).unwrap();
    odd_cases(root);

    let (all, errors) = reference(root, |_| true);
    assert_eq!(
        all.len(),
        shape.devices + 9 + 3 + 1,
        "the reference sees the tree"
    );
    let walk = devices(root, Select::All);
    assert_eq!(walk.devices, all);
    assert_eq!((walk.errors.len(), errors), (0, 0));
    assert_eq!(decoded(&list(root, Select::All).devices), all);

    let (with_modalias, _) = reference(root, reference_has_modalias);
    assert_eq!(
        with_modalias.len(),
        // A, a, b, Z and the one that is not UTF-8 have a modalias file.
        shape.modalias_files + shape.modalias_in_uevent + 5
    );
    assert_eq!(devices(root, Select::WithModalias).devices, with_modalias);
    assert_eq!(
        decoded(&list(root, Select::WithModalias).devices),
        with_modalias
    );

    let also = DeviceMatch {
        subsystems: vec!["tifm".into(), "memory".into()],
        names: vec!["tty1*".into()],
    };
    let (resync, _) = reference(root, |dir| {
        reference_has_modalias(dir)
            || dir
                .file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b"tty1"))
            || subsystem(dir).is_some_and(|s| s == "tifm" || s == "memory")
    });
    assert!(resync.len() > with_modalias.len());
    assert_eq!(decoded(&resync_list(root, &also).devices), resync);
}
