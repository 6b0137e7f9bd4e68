//! The module loader's index and resolver: reads a kernel's module index
//! (`modules.alias.bin`, `modules.dep.bin`, builtin lists, `modules.softdep`), modprobe.d and
//! the kernel command line, and resolves a `MODALIAS` to a load plan exactly as libkmod's
//! `kmod_module_new_from_lookup` + `kmod_module_probe_insert_module` (as used by
//! `modprobe`) would — without libkmod and without spawning processes — and loads the plans
//! ([`load`]): `finit_module`/`init_module` behind a trait, compressed modules, one load in
//! flight per module, independent modules in parallel.
//!
//! # Usage
//!
//! ```no_run
//! use kmod_loader::{Resolver, ResolverOptions, Step};
//!
//! // /lib/modules/$(uname -r), libkmod's modprobe.d directories, /proc/cmdline:
//! let resolver = Resolver::open(ResolverOptions::default())?;
//! let plan = resolver.plan("pci:v00008086d00001533sv00008086sd00000000bc02sc00i00")?;
//! for step in &plan.steps {
//!     match step {
//!         Step::Insert { module, path, options } => println!("load {module} from {} {options}", path.display()),
//!         Step::Builtin { module } => println!("{module} is built in"),
//!         Step::Install { module, command, .. } => println!("{module}: run `{command}` instead"),
//!         Step::NotFound { module } => println!("{module}: no such module"),
//!     }
//! }
//! // Or in `modprobe --show-depends` form:
//! println!("{}", plan.show_depends().join("\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! * [`binindex`] — libkmod's binary trie format, read as untrusted input (bounds-checked,
//!   loops and dangling offsets detected, sizes bounded), walked whole or searched in place.
//! * [`index`] — the module directory: binary indexes looked up in place, with text fallbacks.
//! * [`fnmatch`] — `fnmatch(3)` with flags 0, byte-wise.
//! * [`Config`] — modprobe.d, `modules.softdep`, the kernel command line.
//! * [`Resolver`] — lookup order ([`Resolver::lookup`]) and load plans ([`Resolver::plan`],
//!   [`Resolver::module_plans`]), reloading on change ([`Stamp`]).
//! * [`load`] — running the plans: the syscalls behind [`load::Kernel`], compressed modules,
//!   module state from sysfs, the [`load::Loader`] (one load in flight per module, a bounded
//!   pool of workers), and the [`load::LoaderActor`] that turns `add` events into loads.
//!
//! With the cargo feature `test-support`, `load::FakeKernel` (a recording kernel for tests
//! and benchmarks) is available too.
//!
//! # Loading
//!
//! ```no_run
//! use std::sync::Arc;
//! use kmod_loader::load::{
//!     Compression, LinuxKernel, Loader, LoaderActor, LoaderArgs, SysModule, default_workers,
//! };
//! use kmod_loader::{Resolver, ResolverOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let loader = Loader::new(Arc::new(LinuxKernel), SysModule::default(), default_workers())
//!     .kernel_decompresses(Compression::supported_by_kernel("/sys/module/compression".as_ref()));
//! let args = LoaderArgs {
//!     resolver: Box::new(Resolver::open(ResolverOptions::default())?),
//!     loader: Arc::new(loader),
//!     dry_run: false,
//! };
//! let (actor, _) = ractor::Actor::spawn(None, LoaderActor, args).await?;
//! // Feed it `LoaderMsg::Events` (from the listener) or `LoaderMsg::Load { .. }`.
//! # let _ = actor; Ok(()) }
//! ```
//!
//! # How it behaves
//!
//! The rules — how the index is read (binary files looked up in place, as libkmod does with its
//! `mmap`s, or their text forms when missing or corrupt), the lookup order, modprobe.d and the
//! command line, what a plan holds, reloading on change, what the kernel's answers mean, the
//! scheduler, `install` commands, udev's other driver rules, and where we differ from libkmod
//! on purpose — are described in `docs/kmod-loader.md` in the repository; comments in the code
//! link to its headings.
//!
//! Lookups give the same plans as `modprobe` for every alias of Debian 12's kernels
//! (`tests/integration/differential.rs`, which `scripts/test` runs with
//! `DEVMGR_REQUIRE_ALL_TESTS=1` so that it fails rather than skips when the kernels are
//! missing), and the text fallbacks the same as the binary files.
//!
//! Decompression uses pure-Rust crates (`lzma-rs`, `ruzstd`, `flate2` with miniz_oxide): no C
//! toolchain or system library, and the output is bounded. Module loading is rare, so their
//! speed does not matter.
//!
//! Benchmarks (lookups against libkmod, memory, the worker pool) and the commands that
//! produce them are in `crates/kmod-loader/BENCH.md`.

// Public modules: the index readers are used on their own (the `fuzz` crate's `index_reader`
// target drives them directly; `devmgr trigger` matches with `fnmatch`), and `load` groups the
// loader. Everything else is private and re-exported below.
pub mod binindex;
mod config;
mod error;
mod fasthash;
pub mod fnmatch;
pub mod index;
pub mod load;
mod normalize;
mod options;
mod reload;
mod resolve;
mod strs;

pub use config::{Command, Config, ConfigAlias, DEFAULT_CONFIG_DIRS, Softdep, Weakdep};
pub use error::{AliasError, IndexError};
pub use index::ModuleIndex;
pub use normalize::{MAX_ALIAS_LEN, module_name_from_path, normalize_alias, underscores};
pub use options::ResolverOptions;
pub use reload::Stamp;
pub use resolve::{Lookup, ModuleRef, Plan, ResolveError, Resolver, Source, Step};
