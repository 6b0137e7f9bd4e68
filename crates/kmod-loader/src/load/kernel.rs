//! The module-loading syscalls, behind a trait so tests can substitute a recording fake kernel.

use std::ffi::CStr;
use std::fs::File;

use nix::errno::Errno;
use nix::kmod::ModuleInitFlags;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 5.17+): the kernel decompresses the file itself. Not
/// defined by libc or nix.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// The two ways to hand a module to the kernel.
pub trait Kernel: Send + Sync {
    /// `finit_module(fd, params, flags)`.
    fn finit_module(&self, file: &File, params: &CStr, flags: u32) -> Result<(), Errno>;
    /// `init_module(image, params)`, for an image decompressed in userspace.
    fn init_module(&self, image: &[u8], params: &CStr) -> Result<(), Errno>;
}

/// The running kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxKernel;

impl Kernel for LinuxKernel {
    fn finit_module(&self, file: &File, params: &CStr, flags: u32) -> Result<(), Errno> {
        nix::kmod::finit_module(file, params, ModuleInitFlags::from_bits_retain(flags))
    }

    fn init_module(&self, image: &[u8], params: &CStr) -> Result<(), Errno> {
        nix::kmod::init_module(image, params)
    }
}
