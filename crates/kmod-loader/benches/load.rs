//! Serial loading versus the loader's pool, on the 71 modules systemd-udevd loads in the
//! reference guest (`shared/anchor/udevd-vm.sh` with `devices.sh`'s hardware on Debian's 6.12
//! kernel; the list is `benches/udevd-6.12-modules.txt`), planned by our resolver from that
//! kernel's index, loaded into a fake kernel that spends a fixed time per load.
//!
//! Needs the 6.12 kernel from `scripts/kernels`. Run: `cargo bench -p kmod-loader --bench load`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmod_loader::load::{FakeKernel, LoadAction, Loader, ModulePlan, SysModule};
use kmod_loader::{Resolver, ResolverOptions};

/// What the fake kernel spends per module (module init on a real kernel is typically
/// milliseconds to tens of milliseconds).
const KERNEL_WORK: Duration = Duration::from_millis(20);

async fn run(plans: &[ModulePlan], workers: usize) -> (Duration, usize, usize) {
    let sys = tempfile::tempdir().expect("tempdir");
    let kernel = Arc::new(FakeKernel::new(KERNEL_WORK).with_sys_module(sys.path()));
    let loader = Arc::new(Loader::new(
        kernel.clone(),
        SysModule::new(sys.path()),
        workers,
    ));
    let start = Instant::now();
    let tasks: Vec<_> = plans
        .iter()
        .cloned()
        .map(|plan| {
            let loader = Arc::clone(&loader);
            tokio::spawn(async move { loader.run(&plan).await })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    (
        start.elapsed(),
        kernel.loaded().len(),
        kernel.max_in_flight(),
    )
}

fn main() {
    let kernel = match test_support::kernel("6.12.") {
        Ok(kernel) => kernel,
        Err(why) => return println!("load bench skipped: {why}"),
    };
    let (version, dir) = (kernel.version.clone(), kernel.module_dir());
    let resolver = Resolver::open(ResolverOptions {
        module_dir: dir,
        config_dirs: Vec::new(),
        cmdline: None,
    })
    .expect("resolver");
    let wanted: Vec<&str> = include_str!("udevd-6.12-modules.txt").lines().collect();
    // Plans by module name, with every module file replaced by a fake one holding its name.
    let files = tempfile::tempdir().expect("tempdir");
    let mut plans = Vec::new();
    let mut modules = HashSet::new();
    for name in &wanted {
        for mut plan in resolver.module_plans(name).expect("plan") {
            for step in &mut plan.steps {
                if let LoadAction::Insert(path) = &mut step.action {
                    let fake = files.path().join(format!("{}.ko", step.module));
                    std::fs::write(&fake, &step.module).expect("fake module");
                    *path = fake;
                    modules.insert(step.module.clone());
                }
            }
            plans.push(plan);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let ncpu = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (serial, n, _) = run(&plans, 1).await;
        println!(
            "kernel {version}: {} modules udevd loads, {} plans, {n} loads, fake kernel {KERNEL_WORK:?} per load",
            wanted.len(),
            plans.len()
        );
        assert_eq!(n, modules.len(), "each module loaded once");
        println!("serial (1 worker):        {serial:?}");
        for workers in [ncpu, 4, 8] {
            let (pool, m, max) = run(&plans, workers).await;
            assert_eq!(m, n);
            println!(
                "pool of {workers} workers:        {pool:?}  {:.2}x faster than serial (at most {max} at once)",
                serial.as_secs_f64() / pool.as_secs_f64()
            );
        }
    });
}
