//! Heap of a coldplug of a huge `/sys` (issue #16), a size check without timing: on a generated
//! tree of 20,000 devices (`huge_sysfs`), the walk and the replay of every device must not
//! take more than 200 bytes of heap per device at their peak, counted by a global allocator.
//! Paced as the daemon replays (a window of 1,024 unanswered writes, each answered at once as
//! the kernel would) and unpaced (every device written before any answer, as `devmgr trigger`
//! without `--settle` does). The figures at 1k, 10k and 100k devices, and the design that keeps
//! them small, are in `crates/coldplug/BENCH.md` (`cargo bench -p coldplug --bench
//! huge_sysfs`).
//!
//! This file holds one test only, so that no other test allocates while it counts.
#![allow(unsafe_code)]

mod huge_sysfs;

use huge_sysfs::{heap, replay};

const DEVICES: usize = 20_000;
/// Bytes of heap per device at the peak. Measured: 21 paced, 97 unpaced (BENCH.md).
const LIMIT_PER_DEVICE: usize = 200;

#[test]
fn a_coldplug_of_20k_devices_takes_at_most_200_bytes_of_heap_per_device() {
    let tmp = huge_sysfs::tempdir();
    let shape = huge_sysfs::build(tmp.path(), DEVICES).expect("the tree");
    assert_eq!(shape.devices, DEVICES);
    let uuid_file = huge_sysfs::uuid_file(tmp.path());

    let mut failures = Vec::new();
    for (mode, window) in [("paced (window 1024)", Some(1024)), ("unpaced", None)] {
        let (report, peak) = heap::peak_during(|| replay(tmp.path(), &uuid_file, window));
        assert!(report.settled, "{mode}: {report:?}");
        assert_eq!(
            (report.devices, report.written, report.answered),
            (DEVICES, DEVICES, DEVICES),
            "{mode}"
        );
        let per_device = peak as f64 / DEVICES as f64;
        eprintln!(
            "{mode}: peak heap {peak} bytes for {DEVICES} devices = {per_device:.1} bytes per device"
        );
        if per_device > LIMIT_PER_DEVICE as f64 {
            failures.push(format!(
                "{mode}: {per_device:.1} bytes per device at the peak (limit {LIMIT_PER_DEVICE})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
