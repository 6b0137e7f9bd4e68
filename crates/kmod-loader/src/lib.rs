//! The module loader: reads the running kernel's module index (`modules.alias.bin`,
//! `modules.dep.bin`, builtin lists, softdeps, modprobe.d, the kernel command line), resolves a
//! `MODALIAS` to a load plan exactly as libkmod does, and loads modules with `finit_module`,
//! one load in flight per module, independent modules in parallel.
//!
//! Status: not implemented yet (issues #6 and #7). The crate exports nothing so far.
