//! Loading modules (issue #7): the syscalls behind a [`Kernel`] trait, compressed modules, the
//! kernel's module state, and a loader that runs load plans with one load in flight per module
//! and independent modules in parallel.

pub mod actor;
pub mod compression;
pub mod insert;
pub mod install;
pub mod kernel;
mod plans;
pub mod rules;
pub mod scheduler;
pub mod state;

pub use actor::{LoaderActor, LoaderArgs, LoaderMsg, LoaderStats, PlanSource, looks_up};
pub use compression::Compression;
pub use insert::{Outcome, insert};
pub use install::InstallPolicy;
pub use kernel::{FakeKernel, Kernel, LinuxKernel};
pub use scheduler::{
    LoadAction, LoadStats, LoadStep, Loader, ModulePlan, NoDeviceCache, SLOW_LOAD, default_workers,
};
pub use state::{ModuleState, SysModule};
