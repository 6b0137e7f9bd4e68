//! Loading modules: the syscalls behind a [`Kernel`] trait, compressed modules, the kernel's
//! module state, and a loader that runs load plans with one load in flight per module and
//! independent modules in parallel.

mod actor;
mod compression;
#[cfg(any(test, feature = "test-support"))]
mod fake;
mod flight;
mod insert;
mod install;
mod kernel;
mod plans;
pub mod rules;
mod scheduler;
mod state;

pub use actor::{
    LoaderActor, LoaderArgs, LoaderMsg, LoaderState, LoaderStats, MAX_PLANS_IN_FLIGHT, PlanSource,
    RunningPlan, looks_up,
};
pub use compression::{Compression, MAX_MODULE_SIZE};
#[cfg(any(test, feature = "test-support"))]
pub use fake::FakeKernel;
pub use insert::{Outcome, insert};
pub use install::{DEFAULT_INSTALL_TIMEOUT, InstallPolicy};
pub use kernel::{Kernel, LinuxKernel, MODULE_INIT_COMPRESSED_FILE};
pub use scheduler::{
    LoadAction, LoadStats, LoadStep, Loader, ModulePlan, NoDeviceCache, SLOW_LOAD, default_workers,
};
pub use state::{ModuleState, SysModule};
