//! kmod-loader's integration tests, in one binary (one link instead of one per file), a module
//! per concern. Two files stay binaries of their own: `memory.rs` installs a counting global
//! allocator, which would count every other test running beside it, and `properties.rs` is
//! run alone by `scripts/test` (`--release --test properties` with many more proptest cases).
//!
//! Tests that need Debian's kernels (`scripts/kernels`), `modprobe` or root skip with a line
//! on stderr, or fail under `DEVMGR_REQUIRE_ALL_TESTS=1` (see the `test-support` crate).

#[path = "../common/mod.rs"]
mod common;

mod cmdline;
mod differential;
mod in_place;
mod index_errors;
mod loader_actor;
mod real_modules;
mod resolve;
mod windowed_walk;
