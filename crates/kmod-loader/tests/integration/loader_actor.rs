//! The loader actor with the real resolver on a fake module directory, a fake kernel, and the
//! real syscalls on this machine's kernel.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, FixtureModule};
use kmod_loader::load::{
    FakeKernel, Kernel, LinuxKernel, Loader, LoaderActor, LoaderArgs, LoaderMsg, SysModule, insert,
};
use kmod_loader::{Resolver, ResolverOptions};
use nix::errno::Errno;
use ractor::{Actor, call};
use uevent::{Action, Uevent};

fn fixture(aliases: &[(&str, &str)]) -> Fixture {
    let f = Fixture::new(
        &[
            FixtureModule {
                path: "kernel/igb.ko",
                deps: &["kernel/dca.ko"],
            },
            FixtureModule {
                path: "kernel/dca.ko",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/newdrv.ko",
                deps: &["kernel/dca.ko"],
            },
        ],
        aliases,
        &[],
        &[],
        "",
    );
    // Fake module files: the fake kernel reads the module's name from them.
    for name in ["igb", "dca", "newdrv"] {
        std::fs::create_dir_all(f.dir().join("kernel")).expect("mkdir");
        f.write(&format!("kernel/{name}.ko"), name.as_bytes());
    }
    f
}

fn add(seqnum: u64, modalias: &str) -> Arc<Uevent> {
    Arc::new(
        Uevent::builder(Action::Add, format!("/devices/pci0000:00/dev{seqnum}"))
            .subsystem("pci")
            .seqnum(seqnum)
            .property("MODALIAS", modalias)
            .build()
            .expect("event"),
    )
}

const IGB: &str = "pci:v00008086d00001533sv00001028sd00000000bc02sc00i00";
const NEW: &str = "usb:v1234p5678d0100dc00dsc00dp00ic03isc01ip01in00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_events_load_their_plans_and_a_changed_index_is_reloaded_before_the_next_batch() {
    let f = fixture(&[("pci:v00008086d00001533sv*sd*bc*sc*i*", "igb")]);
    let resolver = Resolver::open(ResolverOptions {
        module_dir: f.dir().to_path_buf(),
        config_dirs: Vec::new(),
        cmdline: None,
    })
    .expect("resolver");
    let sys = tempfile::tempdir().expect("tempdir");
    let kernel = Arc::new(FakeKernel::new(Duration::from_millis(1)).with_sys_module(sys.path()));
    let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 2));
    let args = LoaderArgs {
        resolver: Box::new(resolver),
        loader,
        dry_run: false,
    };
    let (actor, _) = Actor::spawn(None, LoaderActor, args).await.expect("actor");

    // A batch: the igb device (twice) and an alias nothing knows yet.
    let batch = vec![add(1, IGB), add(2, IGB), add(3, NEW)];
    actor
        .send_message(LoaderMsg::Events(batch, None))
        .expect("send");
    call!(actor, LoaderMsg::WaitIdle).expect("idle");
    let names: Vec<String> = kernel.loaded().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["dca", "igb"]);

    // depmod runs again (a new module is installed): the next batch sees the new alias.
    let updated = fixture(&[
        ("pci:v00008086d00001533sv*sd*bc*sc*i*", "igb"),
        ("usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in*", "newdrv"),
    ]);
    for file in ["modules.alias", "modules.alias.bin"] {
        std::fs::copy(updated.dir().join(file), f.dir().join(file)).expect("copy index");
    }
    actor
        .send_message(LoaderMsg::Events(vec![add(4, NEW)], None))
        .expect("send");
    call!(actor, LoaderMsg::WaitIdle).expect("idle");
    let names: Vec<String> = kernel.loaded().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["dca", "igb", "newdrv"], "dca is not loaded twice");
    let stats = call!(actor, LoaderMsg::Stats).expect("stats");
    assert_eq!(stats.reloads, 1);
    assert_eq!(stats.events, 4);
    assert_eq!(stats.loads.loaded, 3);
    actor.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modprobe_d_install_lines_run_disable_or_stop_as_in_modprobe() {
    // igb depends on dca; newdrv too. modprobe.d: igb's install command writes a marker with
    // its options; dca is disabled with /bin/false, so newdrv's plan stops before newdrv.
    let f = fixture(&[
        ("pci:v00008086d00001533sv*sd*bc*sc*i*", "igb"),
        ("usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in*", "newdrv"),
    ]);
    let conf = tempfile::tempdir().expect("tempdir");
    let marker = conf.path().join("igb-installed");
    std::fs::write(
        conf.path().join("admin.conf"),
        format!(
            "options igb debug=2\ninstall igb echo \"$MODPROBE_MODULE $CMDLINE_OPTS\" > {}\n",
            marker.display()
        ),
    )
    .expect("write config");
    let resolver = |extra: &str| {
        std::fs::write(conf.path().join("extra.conf"), extra).expect("write config");
        Resolver::open(ResolverOptions {
            module_dir: f.dir().to_path_buf(),
            config_dirs: vec![conf.path().to_path_buf()],
            cmdline: None,
        })
        .expect("resolver")
    };
    let sys = tempfile::tempdir().expect("tempdir");
    let kernel = Arc::new(FakeKernel::new(Duration::ZERO).with_sys_module(sys.path()));
    let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 2));
    let run = |resolver: Resolver, alias: &'static str| {
        let loader = Arc::clone(&loader);
        async move {
            for plan in resolver.module_plans(alias).expect("plans") {
                loader.run(&plan).await;
            }
        }
    };
    run(resolver(""), IGB).await;
    assert_eq!(
        std::fs::read_to_string(&marker).expect("igb's install command ran"),
        "igb debug=2 \n"
    );
    let names: Vec<String> = kernel.loaded().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["dca"],
        "dca loaded, igb's command ran instead of igb"
    );

    kernel.unload("dca");
    run(resolver("install dca /bin/false\n"), NEW).await;
    assert_eq!(
        kernel.calls("newdrv"),
        0,
        "dca disabled with /bin/false stops the plan"
    );
    run(resolver("install dca /bin/true\n"), NEW).await;
    assert_eq!(kernel.calls("newdrv"), 1, "/bin/true: the plan goes on");
    assert_eq!(kernel.calls("dca"), 1, "dca itself never loaded again");
}

/// This machine's kernel has no module support: the real syscalls must reach it and come back
/// with `ENOSYS` (through the `init_module` fallback too). On a kernel with modules, a garbage
/// file is refused with `ENOEXEC`. Real loads are tested in the QEMU guest.
#[test]
fn the_real_syscalls_reach_the_kernel_and_report_its_errno() {
    if !nix::unistd::geteuid().is_root() {
        return test_support::skip_or_fail(
            "the_real_syscalls_reach_the_kernel",
            "needs root (CAP_SYS_MODULE)",
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("garbage.ko");
    std::fs::write(&file, b"not an ELF module").expect("write");
    let expected = if Path::new("/proc/modules").exists() {
        Errno::ENOEXEC
    } else {
        Errno::ENOSYS
    };
    let opened = std::fs::File::open(&file).expect("open");
    assert_eq!(
        LinuxKernel.finit_module(&opened, c"", 0),
        Err(expected),
        "finit_module"
    );
    assert_eq!(
        LinuxKernel.init_module(b"not an ELF module", c""),
        Err(expected),
        "init_module"
    );
    assert_eq!(insert(&LinuxKernel, &file, "", None), Err(expected));
}
