//! Change detection for reloading (`docs/kmod-loader.md#reloading-on-change`): a stamp of every file and directory the resolver
//! read — size and modification time — compared on demand instead of polling on a timer.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::config_files;
use crate::options::ResolverOptions;

/// Index files whose change triggers a reload.
const INDEX_FILES: [&str; 9] = [
    "modules.alias.bin",
    "modules.alias",
    "modules.dep.bin",
    "modules.dep",
    "modules.builtin.bin",
    "modules.builtin",
    "modules.builtin.alias.bin",
    "modules.builtin.modinfo",
    "modules.softdep",
];

/// (path, size and mtime if it exists) of everything a resolver read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

impl Stamp {
    /// Stamps the current state of the files `options` point at.
    pub fn take(options: &ResolverOptions) -> Self {
        let mut paths: Vec<PathBuf> = INDEX_FILES
            .iter()
            .map(|f| options.module_dir.join(f))
            .collect();
        // Directories change mtime when files are added or removed; the files themselves when
        // edited.
        paths.extend(options.config_dirs.iter().cloned());
        paths.extend(config_files(&options.config_dirs, None));
        // The kernel command line does not change during a boot (and /proc reports no
        // useful mtime), so it is not stamped.
        Stamp(
            paths
                .into_iter()
                .map(|p| {
                    let meta = std::fs::metadata(&p)
                        .ok()
                        .and_then(|m| Some((m.len(), m.modified().ok()?)));
                    (p, meta)
                })
                .collect(),
        )
    }
}
