//! A recording fake kernel for tests and benchmarks (cargo feature `test-support`).

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;

use super::compression::Compression;
use super::kernel::{Kernel, MODULE_INIT_COMPRESSED_FILE};

/// A kernel for tests and benchmarks. A "module file" holds the module's name (possibly
/// compressed); loading sleeps for `delay` (the kernel's work), records the load and, given a
/// sysfs directory, marks the module live there. A module loads once: again gives `EEXIST`.
#[derive(Debug, Default)]
pub struct FakeKernel {
    delay: Duration,
    compression: Option<Compression>,
    sys_module: Option<PathBuf>,
    failures: HashMap<String, Errno>,
    no_finit: bool,
    state: Mutex<FakeState>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

#[derive(Debug, Default)]
struct FakeState {
    /// Modules that fail only their first loads: errno and how many loads still fail.
    failing_first: HashMap<String, (Errno, usize)>,
    loaded: Vec<(String, String)>,
    calls: HashMap<String, usize>,
    userspace_images: usize,
}

impl FakeKernel {
    /// A fake kernel whose loads take `delay`.
    pub fn new(delay: Duration) -> FakeKernel {
        FakeKernel {
            delay,
            ..FakeKernel::default()
        }
    }

    /// Accepts `MODULE_INIT_COMPRESSED_FILE` for this format only (like a kernel built with
    /// `CONFIG_MODULE_COMPRESS_<X>` and `CONFIG_MODULE_DECOMPRESS`).
    pub fn decompresses(mut self, compression: Compression) -> FakeKernel {
        self.compression = Some(compression);
        self
    }

    /// Writes `<dir>/<name>/initstate` = `live` after each successful load.
    pub fn with_sys_module(mut self, dir: impl Into<PathBuf>) -> FakeKernel {
        self.sys_module = Some(dir.into());
        self
    }

    /// Answers `ENOSYS` to `finit_module`, like a kernel without it.
    pub fn without_finit(mut self) -> FakeKernel {
        self.no_finit = true;
        self
    }

    /// Loading `module` fails with `errno`.
    pub fn failing(mut self, module: &str, errno: Errno) -> FakeKernel {
        self.failures.insert(module.to_owned(), errno);
        self
    }

    /// Loading `module` fails with `errno` the first `times` times, then works (a device that
    /// was not there at the first tries).
    pub fn failing_first(self, module: &str, errno: Errno, times: usize) -> FakeKernel {
        self.lock()
            .failing_first
            .insert(module.to_owned(), (errno, times));
        self
    }

    /// Marks `module` as loaded before we start (by someone else: `EEXIST` for us), without
    /// telling sysfs.
    pub fn preloaded(self, module: &str) -> FakeKernel {
        self.lock().loaded.push((module.to_owned(), String::new()));
        self
    }

    /// Unloads `module` as `rmmod` would: forgets it and removes its sysfs directory.
    pub fn unload(&self, module: &str) {
        self.lock().loaded.retain(|(n, _)| n != module);
        if let Some(dir) = &self.sys_module {
            let _ = std::fs::remove_dir_all(dir.join(module));
        }
    }

    /// Modules loaded, in order, with the options they were given.
    pub fn loaded(&self) -> Vec<(String, String)> {
        self.lock().loaded.clone()
    }

    /// How many times the kernel was asked to load `module`.
    pub fn calls(&self, module: &str) -> usize {
        self.lock().calls.get(module).copied().unwrap_or(0)
    }

    /// Every load request, by module.
    pub fn all_calls(&self) -> HashMap<String, usize> {
        self.lock().calls.clone()
    }

    /// Loads handed over as userspace-decompressed images (`init_module`).
    pub fn userspace_images(&self) -> usize {
        self.lock().userspace_images
    }

    /// The most loads that were ever running at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn load(&self, image: &[u8], params: &CStr) -> Result<(), Errno> {
        let name = String::from_utf8_lossy(image).trim().to_owned();
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        *self.lock().calls.entry(name.clone()).or_default() += 1;
        std::thread::sleep(self.delay);
        let result = {
            let mut state = self.lock();
            let first = match state.failing_first.get_mut(&name) {
                Some((errno, left)) if *left > 0 => {
                    *left -= 1;
                    Some(*errno)
                }
                _ => None,
            };
            if let Some(errno) = self.failures.get(&name).copied().or(first) {
                Err(errno)
            } else if state.loaded.iter().any(|(n, _)| *n == name) {
                Err(Errno::EEXIST)
            } else {
                let params = params.to_string_lossy().into_owned();
                state.loaded.push((name.clone(), params));
                Ok(())
            }
        };
        if let (Ok(()), Some(dir)) = (result, &self.sys_module) {
            let dir = dir.join(&name);
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join("initstate"), "live\n");
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Kernel for FakeKernel {
    fn finit_module(&self, file: &File, params: &CStr, flags: u32) -> Result<(), Errno> {
        if self.no_finit {
            return Err(Errno::ENOSYS);
        }
        if flags & !MODULE_INIT_COMPRESSED_FILE != 0 {
            return Err(Errno::EINVAL);
        }
        let mut data = Vec::new();
        let mut reader = file;
        reader.read_to_end(&mut data).map_err(|_| Errno::EIO)?;
        let format = Compression::detect(&data);
        let image = match (format, flags & MODULE_INIT_COMPRESSED_FILE != 0) {
            (Compression::None, false) => data,
            // Like the kernel: a compressed file needs the flag and a matching decompressor.
            (format, true) if Some(format) == self.compression => {
                format.decompress(&data).map_err(|_| Errno::EINVAL)?
            }
            _ => return Err(Errno::ENOEXEC),
        };
        self.load(&image, params)
    }

    fn init_module(&self, image: &[u8], params: &CStr) -> Result<(), Errno> {
        if Compression::detect(image) != Compression::None {
            return Err(Errno::ENOEXEC);
        }
        self.lock().userspace_images += 1;
        self.load(image, params)
    }
}
