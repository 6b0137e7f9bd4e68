//! Where a [`Resolver`](crate::Resolver) reads the index and configuration from.

use std::path::{Path, PathBuf};

use crate::config::DEFAULT_CONFIG_DIRS;

/// Where to read the index and configuration from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOptions {
    /// The module directory, e.g. `/lib/modules/6.12.100+deb12-amd64`.
    pub module_dir: PathBuf,
    /// modprobe.d directories (or files), highest precedence first.
    pub config_dirs: Vec<PathBuf>,
    /// The kernel command line file (`/proc/cmdline`), or `None` to ignore it.
    pub cmdline: Option<PathBuf>,
}

impl Default for ResolverOptions {
    /// `/lib/modules/$(uname -r)`, libkmod's configuration directories and `/proc/cmdline`.
    fn default() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        ResolverOptions {
            module_dir: Path::new("/lib/modules").join(release.trim()),
            config_dirs: DEFAULT_CONFIG_DIRS.iter().map(PathBuf::from).collect(),
            cmdline: Some(PathBuf::from("/proc/cmdline")),
        }
    }
}
