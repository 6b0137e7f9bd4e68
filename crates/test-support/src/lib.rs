//! Helpers shared by the workspace's tests and benchmarks (a dev-dependency only, never
//! shipped).
//!
//! Two things every crate's host tests need:
//!
//! - [`skip_or_fail`]: a test that cannot run here (not root, no kernel index, no tool) says
//!   so on the terminal under plain `cargo test`, and fails instead when
//!   `DEVMGR_REQUIRE_ALL_TESTS=1` (as `scripts/test` sets it), so that a full run cannot pass
//!   by skipping.
//! - The scripts' cache ([`cache_dir`]) and the kernels `scripts/kernels` unpacked into it
//!   ([`kernels`], [`kernel`]), found by the same rule as `scripts/lib/cache.sh`.
//!
//! And for tests that check what was logged: [`Capture`], a `tracing` subscriber keeping
//! every event.
//!
//! ```no_run
//! let kernel = match test_support::kernel("6.12.") {
//!     Ok(kernel) => kernel,
//!     Err(why) => return test_support::skip_or_fail("my_test", &why),
//! };
//! let modules = kernel.module_dir(); // <root>/lib/modules/<version>
//! # let _ = modules;
//! ```

use std::io::Write;
use std::path::PathBuf;

mod capture;

pub use capture::{Capture, Event};

/// The variable that turns every skip into a failure (`scripts/test` sets it to `1`).
pub const REQUIRE_ALL_TESTS: &str = "DEVMGR_REQUIRE_ALL_TESTS";

/// Whether `DEVMGR_REQUIRE_ALL_TESTS=1`: no test may skip.
pub fn require_all_tests() -> bool {
    std::env::var(REQUIRE_ALL_TESTS).as_deref() == Ok("1")
}

/// Reports that `test` does not run here because of `why`: writes `skipped <test>: <why>` to
/// the process's standard error, or panics when `DEVMGR_REQUIRE_ALL_TESTS=1`.
///
/// The line goes straight to the file descriptor with `writeln!(std::io::stderr(), ..)`:
/// libtest captures `println!` and `eprintln!` and shows them only for failing tests, which
/// would hide every skip of a passing run.
pub fn skip_or_fail(test: &str, why: &str) {
    if require_all_tests() {
        panic!("{test} cannot run: {why}, and {REQUIRE_ALL_TESTS}=1 forbids skipping");
    }
    let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
}

/// The scripts' cache directory, as `scripts/lib/cache.sh` resolves it: `$DEVMGR_CACHE` when
/// set (relative to the current directory if relative), else `$HOME/.cache/devmgr`; an error
/// when neither variable is set.
pub fn cache_dir() -> Result<PathBuf, String> {
    if let Some(cache) = std::env::var_os("DEVMGR_CACHE").filter(|c| !c.is_empty()) {
        return std::path::absolute(&cache).map_err(|e| format!("DEVMGR_CACHE: {e}"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or("neither DEVMGR_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/devmgr"))
}

/// The list `scripts/kernels` writes: `kernels/list` in the [cache](cache_dir).
pub fn kernels_list() -> Result<PathBuf, String> {
    Ok(cache_dir()?.join("kernels/list"))
}

/// One kernel package `scripts/kernels` unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Its release, e.g. `6.12.118+deb12-amd64`.
    pub version: String,
    /// Where the package is unpacked.
    pub root: PathBuf,
}

impl Kernel {
    /// Its module directory, `<root>/lib/modules/<version>`.
    pub fn module_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }
}

/// The kernels in the [list](kernels_list) (lines `<version> <root>`), in its order; an error
/// saying what is missing when the list cannot be read or names no kernel.
pub fn kernels() -> Result<Vec<Kernel>, String> {
    let list = kernels_list()?;
    let text = std::fs::read_to_string(&list)
        .map_err(|e| format!("{}: {e} (run scripts/kernels)", list.display()))?;
    let kernels: Vec<Kernel> = text
        .lines()
        .filter_map(|line| {
            let (version, root) = line.split_once(' ')?;
            Some(Kernel {
                version: version.to_owned(),
                root: PathBuf::from(root),
            })
        })
        .collect();
    if kernels.is_empty() {
        return Err(format!(
            "{} lists no kernel (run scripts/kernels)",
            list.display()
        ));
    }
    Ok(kernels)
}

/// The first listed kernel whose version starts with `prefix` (e.g. `"6.12."`); an error
/// saying what is missing otherwise.
pub fn kernel(prefix: &str) -> Result<Kernel, String> {
    let list = kernels_list()?;
    kernels()?
        .into_iter()
        .find(|k| k.version.starts_with(prefix))
        .ok_or_else(|| {
            format!(
                "{} lists no {prefix}* kernel (run scripts/kernels)",
                list.display()
            )
        })
}
