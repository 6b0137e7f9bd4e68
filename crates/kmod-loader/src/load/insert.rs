//! Handing one module file to the kernel (`docs/kmod-loader.md#loading-a-module`), and what
//! the kernel's answer means (`docs/kmod-loader.md#what-the-kernels-answer-means`).

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::errno::Errno;

use super::compression::Compression;
use super::kernel::{Kernel, MODULE_INIT_COMPRESSED_FILE};

/// How loading one module ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel loaded it now.
    Loaded,
    /// It was already in the kernel (`live` in sysfs, or `EEXIST`).
    AlreadyLoaded,
    /// Built into the kernel: nothing to load.
    Builtin,
    /// `ENODEV`: its init found no hardware (normal, e.g. `acpi_cpufreq` under
    /// `intel_pstate`).
    NoDevice,
    /// `ENOENT` from the kernel: an unknown symbol or parameter.
    NotFound,
    /// The module's file, listed in `modules.dep`, is not on disk (the index is out of date).
    FileMissing,
    /// `EPERM` and the module is listed in the kernel's `module_blacklist=`.
    BlacklistedByKernel,
    /// Not attempted: a module it depends on failed.
    Skipped,
    /// An `install MODULE /bin/true` or `/bin/false` line disabled it: nothing was loaded, on
    /// purpose. With `/bin/false` (`stops_plan`) the plan stops here, as modprobe's does,
    /// because the command "failed".
    Disabled {
        /// The command was `/bin/false`: the rest of the plan is skipped.
        stops_plan: bool,
    },
    /// An `install` command ran instead of the load and exited with status 0.
    Installed,
    /// An `install` command failed: a non-zero exit status, a signal, its timeout, or it could
    /// not be started.
    InstallFailed,
    /// The module has an `install` command and running them is switched off
    /// (`loader.run_install_commands = false`).
    InstallRefused,
    /// The task running the load panicked (a bug, in the loader or a decompressor): whether
    /// the kernel got the module is unknown, so the plan stops here.
    Panicked,
    /// Any other error.
    Failed(Errno),
}

impl Outcome {
    /// Whether the module is in the kernel afterwards (as far as the load can tell: an
    /// `install` command may or may not have loaded it).
    pub fn is_loaded(self) -> bool {
        matches!(
            self,
            Outcome::Loaded | Outcome::AlreadyLoaded | Outcome::Builtin
        )
    }

    /// Whether the step succeeded the way libkmod's `kmod_module_probe_insert_module` counts
    /// success (its `err == 0`): a load, a module already there, a builtin, an `install`
    /// command that exited 0 (`/bin/true` included). Any other outcome of a required step
    /// (the module or one of its dependencies) ends the plan.
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            Outcome::Loaded
                | Outcome::AlreadyLoaded
                | Outcome::Builtin
                | Outcome::Installed
                | Outcome::Disabled { stops_plan: false }
        )
    }

    /// The outcome of a load that returned `result`, for module `name`, given the modules the
    /// kernel command line blacklists (`module_blacklist=`).
    pub fn classify(result: Result<(), Errno>, name: &str, kernel_blacklist: &[String]) -> Outcome {
        match result {
            Ok(()) => Outcome::Loaded,
            Err(Errno::EEXIST) => Outcome::AlreadyLoaded,
            Err(Errno::ENODEV) => Outcome::NoDevice,
            Err(Errno::ENOENT) => Outcome::NotFound,
            Err(Errno::EPERM) if kernel_blacklist.iter().any(|m| m == name) => {
                Outcome::BlacklistedByKernel
            }
            Err(errno) => Outcome::Failed(errno),
        }
    }
}

/// Loads the module file at `path` with `options`:
/// - uncompressed: `finit_module(fd)`;
/// - compressed in the format the kernel decompresses (`kernel_decompresses`, from
///   `/sys/module/compression`): `finit_module(fd, MODULE_INIT_COMPRESSED_FILE)`;
/// - otherwise: decompressed here and handed over with `init_module`.
///
/// `ENOSYS` from `finit_module` falls back to `init_module`.
pub fn insert(
    kernel: &dyn Kernel,
    path: &Path,
    options: &str,
    kernel_decompresses: Option<Compression>,
) -> Result<(), Errno> {
    let params = CString::new(options).map_err(|_| Errno::EINVAL)?;
    let file = File::open(path).map_err(io_errno)?;
    let mut head = [0u8; 6];
    let n = file.read_at(&mut head, 0).map_err(io_errno)?;
    let format = Compression::detect(&head[..n]);
    let flags = match format {
        Compression::None => Some(0),
        f if Some(f) == kernel_decompresses => Some(MODULE_INIT_COMPRESSED_FILE),
        _ => None,
    };
    if let Some(flags) = flags {
        match kernel.finit_module(&file, &params, flags) {
            Err(Errno::ENOSYS) => {
                tracing::debug!(path = %path.display(), "finit_module unavailable; using init_module");
            }
            result => return result,
        }
    }
    insert_decompressed(kernel, &file, path, &params, format)
}

/// The rare path: the module decompressed here and handed over with `init_module`. Never
/// inlined into [`insert`]: the decompressors keep their state on the stack (tens of KB), and
/// a frame that large is probed page by page on entry, so every load thread would touch that
/// much stack even when it never decompresses.
#[cold]
#[inline(never)]
fn insert_decompressed(
    kernel: &dyn Kernel,
    mut file: &File,
    path: &Path,
    params: &CString,
    format: Compression,
) -> Result<(), Errno> {
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io_errno)?;
    let image = format.decompress(&data).map_err(|err| {
        tracing::warn!(path = %path.display(), error = %err, "cannot decompress module");
        Errno::ENOEXEC
    })?;
    kernel.init_module(&image, params)
}

fn io_errno(err: std::io::Error) -> Errno {
    err.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;
    use crate::load::fake::FakeKernel;

    fn gz(name: &str) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(name.as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn the_kernel_decompresses_its_own_format_and_we_decompress_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain.ko");
        let packed = tmp.path().join("packed.ko.gz");
        std::fs::write(&plain, "plain").unwrap();
        std::fs::write(&packed, gz("packed")).unwrap();

        // A kernel that decompresses gzip: both go through finit_module.
        let kernel = FakeKernel::new(Duration::ZERO).decompresses(Compression::Gzip);
        insert(&kernel, &plain, "", Some(Compression::Gzip)).unwrap();
        insert(&kernel, &packed, "debug=1", Some(Compression::Gzip)).unwrap();
        assert_eq!(kernel.userspace_images(), 0);
        assert_eq!(kernel.loaded()[1], ("packed".into(), "debug=1".into()));

        // A kernel without a gzip decompressor: we decompress and use init_module.
        let kernel = FakeKernel::new(Duration::ZERO);
        insert(&kernel, &packed, "", None).unwrap();
        // Already loaded now: the kernel says so, through the same userspace path.
        assert_eq!(
            insert(&kernel, &packed, "", Some(Compression::Zstd)),
            Err(Errno::EEXIST)
        );
        assert_eq!(kernel.userspace_images(), 2);
        assert_eq!(kernel.calls("packed"), 2);
    }

    fn xz(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut name.as_bytes(), &mut out).unwrap();
        out
    }

    #[test]
    fn the_flag_or_userspace_path_is_chosen_from_sys_module_compression() {
        let tmp = tempfile::tempdir().unwrap();
        let module = tmp.path().join("virtio_net.ko.xz");
        std::fs::write(&module, xz("virtio_net")).unwrap();
        let compression = tmp.path().join("compression");
        for (sysfs, userspace) in [(Some("xz\n"), 0), (Some("zstd\n"), 1), (None, 1)] {
            match sysfs {
                Some(text) => std::fs::write(&compression, text).unwrap(),
                None => {
                    let _ = std::fs::remove_file(&compression);
                }
            }
            let kernel = FakeKernel::new(Duration::ZERO).decompresses(Compression::Xz);
            let supported = Compression::supported_by_kernel(&compression);
            insert(&kernel, &module, "", supported).unwrap();
            assert_eq!(kernel.userspace_images(), userspace, "sysfs says {sysfs:?}");
            assert_eq!(kernel.loaded()[0].0, "virtio_net");
        }
    }

    #[test]
    fn without_finit_module_the_image_goes_through_init_module() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain.ko");
        let packed = tmp.path().join("packed.ko.xz");
        std::fs::write(&plain, "plain").unwrap();
        std::fs::write(&packed, xz("packed")).unwrap();
        let kernel = FakeKernel::new(Duration::ZERO).without_finit();
        insert(&kernel, &plain, "", None).unwrap();
        insert(&kernel, &packed, "", Some(Compression::Xz)).unwrap();
        assert_eq!(kernel.userspace_images(), 2);
        let names: Vec<String> = kernel.loaded().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["plain", "packed"]);
    }

    #[test]
    fn options_with_a_nul_and_missing_files_are_errors() {
        let kernel = FakeKernel::new(Duration::ZERO);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("m.ko");
        std::fs::write(&file, "m").unwrap();
        assert_eq!(insert(&kernel, &file, "a\0b", None), Err(Errno::EINVAL));
        assert_eq!(
            insert(&kernel, &tmp.path().join("gone.ko"), "", None),
            Err(Errno::ENOENT)
        );
        assert_eq!(kernel.calls("m"), 0);
    }

    #[test]
    fn a_corrupt_compressed_file_is_refused_not_loaded() {
        let kernel = FakeKernel::new(Duration::ZERO);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("bad.ko.xz");
        std::fs::write(&file, [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1, 2, 3]).unwrap();
        assert_eq!(insert(&kernel, &file, "", None), Err(Errno::ENOEXEC));
        assert!(kernel.loaded().is_empty());
    }

    #[test]
    fn errnos_map_to_outcomes_as_udev_reports_them() {
        let bl = vec!["nouveau".to_string()];
        assert_eq!(Outcome::classify(Ok(()), "x", &bl), Outcome::Loaded);
        assert_eq!(
            Outcome::classify(Err(Errno::EEXIST), "x", &bl),
            Outcome::AlreadyLoaded
        );
        assert_eq!(
            Outcome::classify(Err(Errno::ENODEV), "x", &bl),
            Outcome::NoDevice
        );
        assert_eq!(
            Outcome::classify(Err(Errno::ENOENT), "x", &bl),
            Outcome::NotFound
        );
        assert_eq!(
            Outcome::classify(Err(Errno::EPERM), "nouveau", &bl),
            Outcome::BlacklistedByKernel
        );
        assert_eq!(
            Outcome::classify(Err(Errno::EPERM), "x", &bl),
            Outcome::Failed(Errno::EPERM)
        );
        assert!(Outcome::AlreadyLoaded.is_loaded() && !Outcome::NoDevice.is_loaded());
    }
}
