//! The device manager subsystem: wires the listener, coldplug and module-loader actors under a
//! supervisor, reads the configuration file, and backs the `devmgr` command line.
//!
//! Status: the subsystem, the configuration file and `run`/`monitor`/`trigger` are issue #8 and
//! not written yet; the crate exports nothing so far. The `devmgr` binary has one command,
//! `devmgr resolve MODALIAS…`, which prints the load plan of each alias in
//! `modprobe --show-depends` form (see `crates/kmod-loader`).

pub mod config;
pub mod subsystem;
