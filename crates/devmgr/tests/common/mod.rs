//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Prints why a test does not run here, or fails when `DEVMGR_REQUIRE_ALL_TESTS=1` (as
/// `scripts/test` sets it).
pub fn skip_or_fail(test: &str, why: &str) {
    if std::env::var("DEVMGR_REQUIRE_ALL_TESTS").as_deref() == Ok("1") {
        panic!("{test}: {why}, and DEVMGR_REQUIRE_ALL_TESTS=1 forbids skipping");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipping {test}: {why}");
}

/// The module directory of Debian's 6.12 kernel from `scripts/kernels`.
pub fn module_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("DEVMGR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/devmgr")))?;
    let list = std::fs::read_to_string(cache.join("kernels/list")).ok()?;
    list.lines().find_map(|l| {
        let (v, root) = l.split_once(' ')?;
        v.starts_with("6.12.")
            .then(|| PathBuf::from(root).join("lib/modules").join(v))
    })
}

/// One test at a time that runs devmgr against the real kernel: their events and uevent
/// sockets would otherwise mix (a flood's unicast aimed at another test's devmgr, say).
pub fn kernel_lock() -> std::sync::MutexGuard<'static, ()> {
    static KERNEL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    KERNEL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For a test that runs devmgr as root with Debian's 6.12 index: the kernel lock and the
/// module directory, or `None` after printing why it skips (see [`skip_or_fail`]).
pub fn root_with_index(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, PathBuf)> {
    if !nix::unistd::geteuid().is_root() {
        skip_or_fail(test, "needs root (writes /sys/devices/**/uevent)");
        return None;
    }
    let Some(dir) = module_dir() else {
        skip_or_fail(test, "no Debian 6.12 module index (run scripts/kernels)");
        return None;
    };
    Some((kernel_lock(), dir))
}
