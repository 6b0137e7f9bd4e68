//! The kernel command line against libkmod: for a table of command lines, on every kernel
//! fetched by `scripts/kernels`, Debian's `modprobe` and our [`Resolver`] are given the same
//! command line and must agree on
//!
//! * the `blacklist` and `options` lines of `modprobe -c` (what the command line parsed to), and
//! * the `modprobe --show-depends` plans of a few real modules, queried by name and by one of
//!   their modaliases (the blacklist applies to alias lookups only).
//!
//! libkmod reads `/proc/cmdline` and nothing else, so modprobe runs in a private mount namespace
//! (`unshare -m`) with the command line file bind-mounted over `/proc/cmdline`; that needs root.
//! Skipped with a reason on stderr when not root, when the kernels, `modprobe` or `unshare` are
//! missing, or when the bind mount fails, unless `DEVMGR_REQUIRE_ALL_TESTS=1`, in which case
//! it fails instead.
//!
//! Also here: `modules.weakdep` entries are never part of a plan.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{Fixture, FixtureModule};
use kmod_loader::{Config, Resolver, ResolverOptions};
use test_support::{Kernel, skip_or_fail};

/// Real modules of Debian's kernels queried by name and by a modalias.
const MODULES: [&str; 3] = ["e1000", "snd-hda-intel", "usbhid"];

/// The command lines compared; the first is the baseline (no module words).
fn command_lines() -> Vec<String> {
    let mut lines: Vec<String> = [
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n",
        // Quoted values with spaces: grub's way (the whole word quoted) and the kernel's.
        "\"e1000.copybreak=a b\" usbhid.quirks=\"0x1:0x2 0x4\"",
        // Flags without `=`.
        "e1000.flag usbhid.jspoll snd-hda-intel.enable_msi",
        // A second `.` in the parameter name: ignored.
        "e1000.a.b=1 snd-hda-intel.x.y.z=2 usbhid.mousepoll=4",
        // Blacklists: several names; with dashes (kept as written) and empty entries.
        "modprobe.blacklist=usbhid,e1000,snd_hda_intel",
        "modprobe.blacklist=snd-hda-intel,,usbhid, e1000.x=1",
        "modprobe.blacklist=e1000 modprobe.blacklist=usbhid",
        "modprobe.blacklist=\"usbhid\" \"modprobe.blacklist=e1000\"",
        // Options for a module name with dashes, written both ways.
        "snd-hda-intel.model=auto snd_hda_intel.index=1,2 usb-hid.x=1",
        // Repeated parameters are all kept, in order.
        "e1000.TxDescriptors=80 e1000.TxDescriptors=90 e1000.copybreak=1 e1000.TxDescriptors=100",
        // Words after `--` (for init) are parsed too.
        "root=/dev/sda1 ro usbhid.mousepoll=4 -- init.arg=1 e1000.after_dashes=1\n",
        // Other white space separates words.
        "\t e1000.x=1\tusbhid.y=2 \r\nsnd-hda-intel.z=3\x0bsnd-hda-intel.w=4\x0c\n",
        // A quote inside a word starts a quoted stretch that is ignored up to its end.
        "x\"y.z=1 e1000.after=1\" usbhid.kept=1",
        // `=` before `.`, empty names and parameters.
        "e1000=1.x usbhid.=3 .e1000=2 e1000..x=1 usbhid.p=",
        // Bad brackets in the module name; an unterminated quote at the end.
        "a].x=1 snd-hda-intel[.x=1 e1000.ok=1 e1000.p=\"unterminated",
        // Tabs inside quotes become spaces in the options.
        "\"e1000.p=x\ty\" usbhid.q=\"a\tb\"",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // libkmod reads 4095 bytes of /proc/cmdline: what comes later is not seen.
    let mut long = "x".repeat(4060);
    long.push_str(" e1000.seen=1 usbhid.cut=123456789 modprobe.blacklist=usbhid e1000.late=1");
    lines.push(long);
    lines
}

fn dedup_lines(lines: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    lines
        .iter()
        .filter(|l| seen.insert((*l).clone()))
        .cloned()
        .collect()
}

/// Shell script run as `sh -c SCRIPT sh CMDLINE ROOT VERSION CONFDIR QUERY...` in a private
/// mount namespace: the configuration part of `modprobe -c`, then each query's
/// `--show-depends`, each followed by a line `@@@`.
const SCRIPT: &str = r#"mount --bind "$1" /proc/cmdline || exit 99
root=$2 ver=$3 conf=$4
shift 4
modprobe -d "$root" -S "$ver" -C "$conf" -c | sed '/^# End of configuration files/q'
echo @@@
for q; do
    modprobe -d "$root" -S "$ver" -C "$conf" --show-depends -- "$q"
    echo @@@
done
"#;

/// Runs [`SCRIPT`]: the `blacklist`/`options` lines of `modprobe -c` and each query's output.
fn modprobe_with_cmdline(
    cmdline: &Path,
    root: &Path,
    version: &str,
    conf: &Path,
    queries: &[String],
) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let out = Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .arg(cmdline)
        .arg(root)
        .arg(version)
        .arg(conf)
        .args(queries)
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.code() == Some(99) || !out.status.success() && out.stdout.is_empty() {
        return Err(format!(
            "cannot bind-mount over /proc/cmdline in a private mount namespace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: Vec<Vec<String>> = vec![Vec::new()];
    for line in text.lines() {
        if line == "@@@" {
            groups.push(Vec::new());
        } else if let Some(g) = groups.last_mut() {
            g.push(line.to_owned());
        }
    }
    groups.pop();
    if groups.len() != queries.len() + 1 {
        return Err(format!(
            "modprobe output did not split into {} groups:\n{text}\n{}",
            queries.len() + 1,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let config = groups
        .remove(0)
        .into_iter()
        .filter(|l| l.starts_with("blacklist ") || l.starts_with("options "))
        .collect();
    Ok((config, groups))
}

/// Our configuration in the form of `modprobe -c`'s `blacklist` and `options` lines.
fn config_lines(config: &Config) -> Vec<String> {
    config
        .blacklist
        .iter()
        .map(|b| format!("blacklist {b}"))
        .chain(
            config
                .options
                .iter()
                .map(|(m, o)| format!("options {m} {o}")),
        )
        .collect()
}

/// Root, the kernels, modprobe and a working bind mount over /proc/cmdline, or why not.
fn preconditions(conf: &Path) -> Result<Vec<Kernel>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (bind-mounts a file over /proc/cmdline with unshare -m)".into());
    }
    let kernels = test_support::kernels()?;
    if Command::new("modprobe").arg("--version").output().is_err() {
        return Err("modprobe (Debian's kmod package) is not installed".into());
    }
    // Probe the bind mount: the configuration must show an option from our file.
    let Kernel { version, root } = &kernels[0];
    let probe = conf.join("probe-cmdline");
    std::fs::write(&probe, "devmgr_probe.p=1").map_err(|e| e.to_string())?;
    let (config, _) = modprobe_with_cmdline(&probe, root, version, &conf.join("d"), &[])?;
    if config != ["options devmgr_probe p=1"] {
        return Err(format!(
            "modprobe did not read the bind-mounted /proc/cmdline (its configuration: {config:?})"
        ));
    }
    Ok(kernels)
}

/// Names a command line in messages: its number and its start.
fn label(i: usize, line: &str) -> String {
    let shown: String = line.chars().take(100).collect();
    let more = if shown.len() < line.len() { "..." } else { "" };
    format!("command line {i} {shown:?}{more}")
}

/// For each module, a modalias of it from the index (an example string of its first pattern).
fn modaliases(resolver: &Resolver) -> Vec<String> {
    let patterns = resolver.index().alias_patterns().expect("alias patterns");
    MODULES
        .iter()
        .map(|m| {
            let name = m.replace('-', "_");
            patterns
                .iter()
                .filter(|(_, module)| *module == name)
                .find_map(|(p, _)| kmod_loader::fnmatch::example_for(p))
                .and_then(|e| String::from_utf8(e).ok())
                .unwrap_or_else(|| panic!("no modalias for {m}"))
        })
        .collect()
}

#[test]
fn command_line_handling_equals_modprobe_with_the_same_command_line() {
    const TEST: &str = "kernel command line differential test against libkmod";
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("d");
    std::fs::create_dir(&conf).expect("config dir");
    let kernels = match preconditions(tmp.path()) {
        Ok(k) => k,
        Err(reason) => return skip_or_fail(TEST, &reason),
    };
    let lines = command_lines();
    let mut compared_plans = 0usize;
    let mut differing_from_baseline = 0usize;
    let mut mismatches = Vec::new();
    for Kernel { version, root } in &kernels {
        let dir = root.join("lib/modules").join(version);
        let mut baseline: Option<Vec<Vec<String>>> = None;
        let mut queries: Vec<String> = MODULES.iter().map(|m| (*m).to_owned()).collect();
        for (i, line) in lines.iter().enumerate() {
            let label = label(i, line);
            let file = tmp.path().join(format!("cmdline-{i}"));
            std::fs::write(&file, line).expect("write command line");
            let resolver = Resolver::open(ResolverOptions {
                module_dir: dir.clone(),
                config_dirs: vec![conf.clone()],
                cmdline: Some(file.clone()),
            })
            .expect("open index");
            if queries.len() == MODULES.len() {
                queries.extend(modaliases(&resolver));
            }
            let (want_config, want_plans) =
                modprobe_with_cmdline(&file, root, version, &conf, &queries)
                    .unwrap_or_else(|e| panic!("{e}"));
            let got_config = config_lines(resolver.config());
            if got_config != want_config {
                mismatches.push(format!(
                    "{version} {label}: configuration\n  libkmod: {want_config:?}\n  ours:    {got_config:?}"
                ));
            }
            for (query, want) in queries.iter().zip(&want_plans) {
                let want = dedup_lines(want);
                let got = resolver
                    .plan(query)
                    .map(|p| p.show_depends())
                    .unwrap_or_else(|e| vec![format!("error: {e}")]);
                compared_plans += 1;
                if got != want {
                    mismatches.push(format!(
                        "{version} {label}: {query}\n  libkmod: {want:?}\n  ours:    {got:?}"
                    ));
                }
            }
            match &baseline {
                None => {
                    for (query, plan) in queries.iter().zip(&want_plans) {
                        assert!(
                            !plan.is_empty(),
                            "{version}: modprobe plans nothing for {query}"
                        );
                    }
                    baseline = Some(want_plans);
                }
                Some(base) => {
                    differing_from_baseline +=
                        base.iter().zip(&want_plans).filter(|(a, b)| a != b).count();
                }
            }
        }
    }
    println!(
        "{} command lines x {} queries ({} modules by name and by modalias) on {} kernels: \
         {compared_plans} plans and {} configurations compared, {differing_from_baseline} plans \
         changed by the command line, {} mismatches",
        lines.len(),
        MODULES.len() * 2,
        MODULES.len(),
        kernels.len(),
        lines.len() * kernels.len(),
        mismatches.len()
    );
    assert!(
        differing_from_baseline >= 20,
        "the command lines changed too few modprobe plans ({differing_from_baseline}): is \
         /proc/cmdline really replaced?"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches with modprobe:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn modules_weakdep_entries_are_never_planned() {
    let f = Fixture::new(
        &[
            FixtureModule {
                path: "kernel/a.ko",
                deps: &[],
            },
            FixtureModule {
                path: "kernel/b.ko",
                deps: &[],
            },
        ],
        &[("pci:v1*", "a")],
        &[],
        &[],
        "",
    );
    f.write("modules.weakdep", b"weakdep a b\n");
    let conf = tempfile::tempdir().expect("tempdir");
    std::fs::write(conf.path().join("w.conf"), "weakdep a b\n").expect("write config");
    let resolver = Resolver::open(ResolverOptions {
        module_dir: f.dir().to_owned(),
        config_dirs: vec![conf.path().to_owned()],
        cmdline: None,
    })
    .expect("open");
    for query in ["pci:v1", "a"] {
        let plan = resolver.plan(query).expect("plan");
        let modules: Vec<&str> = plan.steps.iter().map(|s| s.module()).collect();
        assert_eq!(modules, vec!["a"], "{query}");
    }
}
