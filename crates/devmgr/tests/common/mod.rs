//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub use test_support::skip_or_fail;

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
    match test_support::kernel("6.12.") {
        Ok(kernel) => Some((kernel_lock(), kernel.module_dir())),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

/// The index of one fake module, for tests that load for real without touching the kernel: the
/// serial port's alias (`platform:serial8250`) resolves to `devmgr_settle_test`, whose
/// modprobe.d `install` line sleeps as many seconds as [`FakeModule::set_delay`] says (0 at
/// first) and then appends a line to a marks file ([`FakeModule::marks`]). A load plan thus
/// takes a known time and leaves a trace when it ended.
pub struct FakeModule {
    dir: tempfile::TempDir,
}

impl FakeModule {
    /// Writes the index and modprobe.d into a new temporary directory.
    pub fn new() -> FakeModule {
        let dir = tempfile::tempdir().expect("tempdir");
        let module = FakeModule { dir };
        let (modules, conf) = (module.module_dir(), module.modprobe_d());
        std::fs::create_dir(&modules).expect("mkdir");
        std::fs::create_dir(&conf).expect("mkdir");
        std::fs::write(
            modules.join("modules.dep"),
            "kernel/devmgr_settle_test.ko:\n",
        )
        .expect("modules.dep");
        std::fs::write(
            modules.join("modules.alias"),
            "alias platform:serial8250 devmgr_settle_test\n",
        )
        .expect("modules.alias");
        std::fs::write(modules.join("modules.builtin"), "").expect("modules.builtin");
        std::fs::write(
            conf.join("settle-test.conf"),
            format!(
                "install devmgr_settle_test /bin/sleep $(cat {delay}); echo ended >> {marks}\n",
                delay = module.path().join("delay").display(),
                marks = module.path().join("marks").display()
            ),
        )
        .expect("modprobe.d");
        module.set_delay(0);
        module
    }

    /// The temporary directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The module directory (`loader.module_dir`).
    pub fn module_dir(&self) -> PathBuf {
        self.path().join("modules")
    }

    /// The modprobe.d directory (`loader.modprobe_d`).
    pub fn modprobe_d(&self) -> PathBuf {
        self.path().join("modprobe.d")
    }

    /// How long each load of `devmgr_settle_test` takes from now on.
    pub fn set_delay(&self, seconds: u32) {
        std::fs::write(self.path().join("delay"), format!("{seconds}\n")).expect("delay");
    }

    /// How many loads of `devmgr_settle_test` have ended.
    pub fn marks(&self) -> usize {
        std::fs::read_to_string(self.path().join("marks"))
            .map(|m| m.lines().count())
            .unwrap_or(0)
    }
}
