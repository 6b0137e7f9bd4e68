//! Lookup order and load plans on a fake module directory (`docs/kmod-loader.md#resolving-an-alias`,
//! `#load-plans`, `#reloading-on-change`).

use crate::common;

use std::path::PathBuf;

use common::{Fixture, FixtureModule};
use kmod_loader::load::LoadAction;
use kmod_loader::{Config, ModuleIndex, Resolver, ResolverOptions, Source, Step};

fn fixture(softdep: &str) -> Fixture {
    Fixture::new(
        &[
            // igb depends on dca and i2c-algo-bit; libkmod loads them reversed.
            FixtureModule {
                path: "kernel/net/igb.ko.xz",
                deps: &["kernel/dca.ko.xz", "kernel/i2c-algo-bit.ko.xz"],
            },
            FixtureModule {
                path: "kernel/dca.ko.xz",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/i2c-algo-bit.ko.xz",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/snd-hda-intel.ko.xz",
                deps: &["kernel/snd.ko.xz"],
            },
            FixtureModule {
                path: "kernel/snd.ko.xz",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/ehci-hcd.ko.xz",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/uhci-hcd.ko.xz",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/crc32-pclmul.ko.xz",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/pcspkr.ko.xz",
                deps: &[],
            },
        ],
        &[
            ("pci:v00008086d00001533sv*sd*bc*sc*i*", "igb"),
            ("pci:v00008086d*sv*sd*bc04sc03i*", "snd_hda_intel"),
            ("pci:v*d*sv*sd*bc0Csc03i00*", "uhci_hcd"),
            ("cpu:type:x86,ven*fam*mod*:feature:*0081*", "crc32_pclmul"),
            ("cpu:type:x86,ven*fam*mod*:feature:*0081*", "crc32_pclmul"),
            ("cpu:type:x86,ven*fam*mod*:feature:*0080*", "pcspkr"),
            ("platform:pcspkr", "pcspkr"),
        ],
        &["ext4", "pci_root"],
        &[
            ("acpi*:PNP0A08:*", "pci_root"),
            ("acpi*:PNP0A08:*", "acpi_x"),
        ],
        softdep,
    )
}

fn resolver(f: &Fixture, config: &str, cmdline: &str) -> Resolver {
    let mut c = Config::default();
    c.parse(config, "test.conf");
    c.parse(
        &std::fs::read_to_string(f.dir().join("modules.softdep")).expect("softdep"),
        "modules.softdep",
    );
    c.parse_cmdline(cmdline);
    Resolver::from_parts(ModuleIndex::open(f.dir()).expect("open"), c)
}

fn names(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(Step::module).collect()
}

#[test]
fn dependencies_load_in_reverse_of_the_dep_line_before_the_module() {
    let f = fixture("");
    let r = resolver(&f, "", "");
    let plan = r
        .plan("pci:v00008086d00001533sv0sd0bc02sc00i00")
        .expect("plan");
    assert_eq!(plan.lookup.source, Some(Source::ModulesAlias));
    assert_eq!(names(&plan.steps), vec!["i2c_algo_bit", "dca", "igb"]);
    assert_eq!(
        plan.show_depends()[2],
        format!("insmod {} ", f.dir().join("kernel/net/igb.ko.xz").display())
    );
}

#[test]
fn all_alias_matches_are_returned_once_in_priority_order() {
    let f = fixture("");
    let r = resolver(&f, "", "");
    let l = r
        .lookup("cpu:type:x86,ven0000fam0006mod003C:feature:,0080,0081")
        .expect("lookup");
    // Priority is depmod's module order (crc32_pclmul before pcspkr in the fixture); each
    // module appears once although crc32_pclmul has two matching aliases.
    let found: Vec<&str> = l.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(found, vec!["crc32_pclmul", "pcspkr"]);
    assert!(l.modules.iter().all(|m| m.alias.is_some()));
}

#[test]
fn lookup_sources_are_tried_in_libkmod_order() {
    let f = fixture("");
    // A modprobe.d alias beats everything, even an exact module name.
    let r = resolver(&f, "alias igb snd-hda-intel\n", "");
    let l = r.lookup("igb").expect("lookup");
    assert_eq!(l.source, Some(Source::ConfigAlias));
    assert_eq!(l.modules[0].name, "snd_hda_intel");
    assert_eq!(l.modules[0].alias.as_deref(), Some("igb"));
    // Module name, normalised.
    let r = resolver(&f, "", "");
    let l = r.lookup("snd-hda-intel").expect("lookup");
    assert_eq!(
        (l.source, l.modules[0].alias.clone()),
        (Some(Source::ModuleName), None)
    );
    // A name containing ':' never matches modules.dep.
    assert_eq!(
        r.lookup("platform:pcspkr").expect("lookup").source,
        Some(Source::ModulesAlias)
    );
    // Builtin by name, then builtin alias.
    assert_eq!(
        r.lookup("ext4").expect("lookup").source,
        Some(Source::Builtin)
    );
    let l = r.lookup("acpi:PNP0A08:").expect("lookup");
    assert_eq!(l.source, Some(Source::BuiltinAlias));
    assert_eq!(l.modules.len(), 2);
    // Nothing.
    assert_eq!(
        r.lookup("usb:v0000p0000").expect("lookup"),
        Default::default()
    );
    // Invalid.
    assert!(r.lookup("pci:[12").is_err());
}

#[test]
fn builtin_modules_resolve_to_nothing_to_load() {
    let f = fixture("");
    let r = resolver(&f, "", "");
    let plan = r.plan("acpi:PNP0A08:").expect("plan");
    // Both modules found through modules.builtin.alias.bin are builtin: nothing to load.
    assert!(plan.steps.iter().all(|s| matches!(s, Step::Builtin { .. })));
    assert_eq!(
        plan.show_depends(),
        vec!["builtin pci_root", "builtin acpi_x"]
    );
    let plan = r.plan("ext4").expect("plan");
    assert_eq!(
        plan.steps,
        vec![Step::Builtin {
            module: "ext4".into()
        }]
    );
}

#[test]
fn softdeps_come_before_and_after_with_their_own_dependencies() {
    let f = fixture("softdep igb pre: snd-hda-intel post: pcspkr\n");
    let r = resolver(&f, "", "");
    let plan = r
        .plan("pci:v00008086d00001533sv0sd0bc02sc00i00")
        .expect("plan");
    assert_eq!(
        names(&plan.steps),
        vec![
            "i2c_algo_bit",
            "dca",
            "snd",
            "snd_hda_intel",
            "igb",
            "pcspkr"
        ]
    );
}

#[test]
fn only_the_first_matching_softdep_line_counts() {
    let f = fixture("");
    let r = resolver(
        &f,
        "softdep uhci* pre: ehci-hcd\nsoftdep uhci-hcd pre: pcspkr\n",
        "",
    );
    let plan = r
        .plan("pci:v00001234d00005678sv0sd0bc0Csc03i00")
        .expect("plan");
    assert_eq!(names(&plan.steps), vec!["ehci_hcd", "uhci_hcd"]);
}

#[test]
fn options_join_name_alias_and_command_line_options() {
    let f = fixture("");
    let r = resolver(
        &f,
        "options igb a=1\noptions pci:v00008086d00001533sv0sd0bc02sc00i00 b=2\noptions dca c=3\n",
        "quiet igb.d=4 dca.e=5",
    );
    let plan = r
        .plan("pci:v00008086d00001533sv0sd0bc02sc00i00")
        .expect("plan");
    let opts: Vec<String> = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::Insert { options, .. } => options.clone(),
            other => panic!("unexpected step {other:?}"),
        })
        .collect();
    assert_eq!(opts, vec!["", "c=3 e=5", "a=1 b=2 d=4"]);
    assert!(plan.show_depends()[2].ends_with(" a=1 b=2 d=4 "));
}

#[test]
fn blacklist_applies_to_alias_matches_only() {
    let f = fixture("");
    let r = resolver(&f, "blacklist igb\nblacklist dca\n", "");
    let plan = r
        .plan("pci:v00008086d00001533sv0sd0bc02sc00i00")
        .expect("plan");
    assert!(plan.steps.is_empty());
    assert_eq!(plan.blacklisted, vec!["igb"]);
    // By name it still loads, and a blacklisted dependency still loads.
    let plan = r.plan("igb").expect("plan");
    assert_eq!(names(&plan.steps), vec!["i2c_algo_bit", "dca", "igb"]);
}

#[test]
fn command_line_blacklist_counts() {
    let f = fixture("");
    let r = resolver(&f, "", "modprobe.blacklist=pcspkr,other");
    let plan = r.plan("platform:pcspkr").expect("plan");
    assert!(plan.steps.is_empty());
    assert_eq!(plan.blacklisted, vec!["pcspkr"]);
}

#[test]
fn install_commands_are_planned_not_run_by_the_resolver() {
    let f = fixture("");
    let marker = f.dir().join("ran");
    let config = format!("install pcspkr touch {}\n", marker.display());
    let r = resolver(&f, &config, "");
    let plan = r.plan("platform:pcspkr").expect("plan");
    assert!(matches!(&plan.steps[..], [Step::Install { module, .. }] if module == "pcspkr"));
    assert_eq!(
        plan.show_depends(),
        vec![format!("install touch {} ", marker.display())]
    );
    assert!(!marker.exists());
    // An install command for a name that is no module is a lookup source of its own.
    let r = resolver(&f, "install nosuch /bin/true\n", "");
    assert_eq!(
        r.lookup("nosuch").expect("lookup").source,
        Some(Source::InstallCommand)
    );
    // With softdeps, libkmod ignores the install command and loads the module.
    let r = resolver(&f, &format!("{config}softdep pcspkr pre: dca\n"), "");
    let plan = r.plan("platform:pcspkr").expect("plan");
    assert_eq!(names(&plan.steps), vec!["dca", "pcspkr"]);
    assert!(matches!(plan.steps[1], Step::Insert { .. }));
}

#[test]
fn the_resolver_reloads_when_the_index_or_config_changes() {
    let f = fixture("");
    let conf = tempfile::tempdir().expect("tempdir");
    let mut r = Resolver::open(ResolverOptions {
        module_dir: f.dir().to_owned(),
        config_dirs: vec![conf.path().to_owned()],
        cmdline: None,
    })
    .expect("open");
    assert!(!r.is_stale());
    assert!(!r.reload_if_changed().expect("no reload"));
    assert!(!r.plan("platform:pcspkr").expect("plan").steps.is_empty());
    std::fs::write(conf.path().join("bl.conf"), "blacklist pcspkr\n").expect("write");
    assert!(r.is_stale());
    assert!(r.reload_if_changed().expect("reload"));
    assert!(r.plan("platform:pcspkr").expect("plan").steps.is_empty());
    // The index: a new alias appears after depmod rewrote modules.alias.bin (a new file
    // renamed over the old one, as depmod does).
    let new = f.dir().join("modules.alias.bin.new");
    std::fs::write(&new, common::encode_index(&[("platform:newdev", 0, "dca")])).expect("write");
    std::fs::rename(&new, f.dir().join("modules.alias.bin")).expect("rename");
    assert!(r.reload_if_changed().expect("reload"));
    assert_eq!(
        names(&r.plan("platform:newdev").expect("plan").steps),
        vec!["dca"]
    );
}

#[test]
fn default_options_point_at_the_running_kernel() {
    let o = ResolverOptions::default();
    assert!(o.module_dir.starts_with("/lib/modules"));
    assert_eq!(o.cmdline, Some(PathBuf::from("/proc/cmdline")));
    assert_eq!(o.config_dirs[0], PathBuf::from("/etc/modprobe.d"));
}

#[test]
fn module_plans_give_one_plan_per_found_module_with_softdeps_marked_soft() {
    let f = fixture("softdep igb pre: pcspkr\n");
    let r = resolver(&f, "blacklist uhci_hcd\n", "");
    let plans = r
        .module_plans("pci:v00008086d00001533sv00001028sd00000000bc02sc00i00")
        .expect("plans");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].target, "igb");
    let steps: Vec<(&str, bool)> = plans[0]
        .steps
        .iter()
        .map(|s| (s.module.as_str(), s.soft))
        .collect();
    assert_eq!(
        steps,
        [
            ("i2c_algo_bit", false),
            ("dca", false),
            ("pcspkr", true),
            ("igb", false)
        ]
    );
    assert!(
        plans[0]
            .steps
            .iter()
            .all(|s| matches!(s.action, LoadAction::Insert(_)))
    );

    // Two modules match this CPU: two independent plans, in libkmod's order.
    let cpu = "cpu:type:x86,ven0000fam0006mod003F:feature:,0080,0081";
    let targets: Vec<String> = r
        .module_plans(cpu)
        .expect("plans")
        .into_iter()
        .map(|p| p.target)
        .collect();
    let merged: Vec<String> = r
        .plan(cpu)
        .expect("plan")
        .steps
        .iter()
        .map(|s| s.module().to_owned())
        .collect();
    assert_eq!(targets.len(), 2);
    assert_eq!(
        targets, merged,
        "same modules, same order as the merged plan"
    );

    // Blacklisted through an alias: no plan; builtin: a plan with nothing to load.
    assert!(
        r.module_plans("pci:v00008086d00002934sv00000000sd00000000bc0Csc03i00")
            .expect("plans")
            .is_empty()
    );
    let builtin = r.module_plans("ext4").expect("plans");
    assert_eq!(builtin.len(), 1);
    assert_eq!(builtin[0].steps.len(), 1);
    assert_eq!(
        builtin[0].steps[0].action,
        LoadAction::Builtin,
        "builtin: nothing to load"
    );
}

#[test]
fn the_loaders_plans_apply_the_blacklist_to_modules_named_directly_too() {
    // udev's `kmod load` (KMOD_PROBE_APPLY_BLACKLIST) leaves out a blacklisted module however
    // it was found: the driver rules name `ppdev`, `tifm_sd`, ... directly. modprobe applies
    // the blacklist to aliases only, and `plan` keeps its answer.
    let f = fixture("");
    let r = resolver(&f, "blacklist pcspkr\n", "");
    assert!(
        r.module_plans("pcspkr").expect("plans").is_empty(),
        "named directly, blacklisted: not loaded"
    );
    assert_eq!(names(&r.plan("pcspkr").expect("plan").steps), ["pcspkr"]);
    let r = resolver(&f, "", "modprobe.blacklist=pcspkr");
    assert!(r.module_plans("pcspkr").expect("plans").is_empty());
    let r = resolver(&f, "", "");
    assert_eq!(r.module_plans("pcspkr").expect("plans").len(), 1);
}

#[test]
fn an_install_line_for_a_builtin_module_is_never_run_by_the_loader() {
    // libkmod counts a builtin module as in the kernel before it looks at install commands.
    let f = fixture("");
    let r = resolver(&f, "install ext4 /bin/false\n", "");
    let plans = r.module_plans("ext4").expect("plans");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].steps[0].action, LoadAction::Builtin);
    // modprobe --show-depends ignores what is loaded and prints the command.
    assert!(matches!(
        r.plan("ext4").expect("plan").steps[..],
        [Step::Install { .. }]
    ));
}
