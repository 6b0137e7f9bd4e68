//! The kernel's view of a module: `/sys/module/<name>/initstate`
//! (`docs/kmod-loader.md#is-a-module-in-the-kernel`).

use std::path::{Path, PathBuf};

/// What `/sys/module/<name>` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    /// `initstate` is `live`: loaded.
    Live,
    /// `initstate` is `coming` (its init is running), or the directory exists without
    /// `initstate` (as libkmod reads it): not in the kernel yet.
    Coming,
    /// `initstate` is `going`: being unloaded.
    Going,
    /// No such module, or its state cannot be read (libkmod's noisy "No such device" while a
    /// failed module is torn down counts as not loaded).
    Absent,
}

impl ModuleState {
    /// Whether it is in the kernel, as libkmod's `module_is_inkernel` decides for a module
    /// that is not built in: only `live`.
    pub fn is_loaded(self) -> bool {
        self == ModuleState::Live
    }
}

/// Reads module states under a `/sys/module` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysModule {
    root: PathBuf,
}

impl Default for SysModule {
    fn default() -> Self {
        SysModule::new("/sys/module")
    }
}

impl SysModule {
    /// States under `root` (normally `/sys/module`).
    pub fn new(root: impl Into<PathBuf>) -> SysModule {
        SysModule { root: root.into() }
    }

    /// The directory states are read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state of module `name` (already normalised: `_`, no extension).
    pub fn state(&self, name: &str) -> ModuleState {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return ModuleState::Absent;
        }
        let dir = self.root.join(name);
        match std::fs::read_to_string(dir.join("initstate")) {
            Ok(text) => match text.trim() {
                "live" => ModuleState::Live,
                "coming" => ModuleState::Coming,
                "going" => ModuleState::Going,
                _ => ModuleState::Absent,
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => {
                ModuleState::Coming
            }
            Err(_) => ModuleState::Absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_initstate_and_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = SysModule::new(tmp.path());
        for (name, text) in [
            ("a", "live\n"),
            ("b", "coming\n"),
            ("c", "going\n"),
            ("d", "???\n"),
        ] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
            std::fs::write(tmp.path().join(name).join("initstate"), text).unwrap();
        }
        std::fs::create_dir(tmp.path().join("builtin_with_params")).unwrap();
        assert_eq!(sys.state("a"), ModuleState::Live);
        assert_eq!(sys.state("b"), ModuleState::Coming);
        assert_eq!(sys.state("c"), ModuleState::Going);
        assert_eq!(sys.state("d"), ModuleState::Absent);
        assert_eq!(sys.state("builtin_with_params"), ModuleState::Coming);
        assert_eq!(sys.state("missing"), ModuleState::Absent);
        assert_eq!(sys.state("../etc"), ModuleState::Absent, "no path tricks");
        assert!(ModuleState::Live.is_loaded());
        assert!(!ModuleState::Coming.is_loaded() && !ModuleState::Going.is_loaded());
    }
}
