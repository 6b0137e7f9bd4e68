//! The device manager subsystem: wires the listener, coldplug and module-loader actors under a
//! supervisor, reads the configuration file, and backs the `devmgr` command line.
//!
//! Status: not implemented yet (issue #8). The crate exports nothing so far; the `devmgr`
//! binary only answers `--help` and `--version`.
