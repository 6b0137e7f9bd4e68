//! Differential test against libkmod: for every kernel fetched by `scripts/kernels`, the plan
//! of every modalias in the corpus (one concrete string per `modules.alias` pattern plus the
//! real modaliases under `/sys/devices` and from the reference QEMU guest) must equal
//! `modprobe --show-depends` line for line, looked up in place (`Resolver::open`, what the
//! daemon uses); and the text fallbacks of the index must give the plans of its binary files.
//!
//! Skipped with a printed reason when the kernels or `modprobe` are missing, unless
//! `DEVMGR_REQUIRE_ALL_TESTS=1`, in which case it fails instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kmod_loader::index::Form;
use kmod_loader::{Resolver, ResolverOptions};
use test_support::Kernel;

use crate::common;

/// Modaliases per `modprobe -a` process.
const BATCH: usize = 1500;
/// Every `TEXT_STRIDE`th modalias of the corpus is planned from the text fallbacks too (they are
/// scanned pattern by pattern, slow in a debug build).
const TEXT_STRIDE: usize = 97;

fn kernels() -> Result<Vec<Kernel>, String> {
    let kernels = test_support::kernels()?;
    if Command::new("modprobe").arg("--version").output().is_err() {
        return Err("modprobe (Debian's kmod package) is not installed".into());
    }
    Ok(kernels)
}

/// A module that nothing depends on, no alias names and no softdep mentions: its
/// `insmod` line separates the outputs of consecutive aliases in one `modprobe -a` run.
fn sentinel(resolver: &Resolver, dir: &Path) -> String {
    let dep = std::fs::read_to_string(dir.join("modules.dep")).expect("modules.dep");
    let mut depended: BTreeSet<String> = BTreeSet::new();
    let mut all = Vec::new();
    for line in dep.lines() {
        let (m, deps) = line.split_once(':').expect("dep line");
        all.push(kmod_loader::module_name_from_path(m));
        for d in deps.split_whitespace() {
            depended.insert(kmod_loader::module_name_from_path(d));
        }
    }
    let patterns = resolver.index().alias_patterns().expect("alias patterns");
    let aliased: BTreeSet<&str> = patterns.iter().map(|(_, m)| m.as_str()).collect();
    all.into_iter()
        .find(|m| {
            !depended.contains(m)
                && !aliased.contains(m.as_str())
                && resolver.config().softdep_for(m).is_none()
                && !resolver.config().softdeps.iter().any(|s| {
                    s.pre
                        .iter()
                        .chain(&s.post)
                        .any(|n| n.replace('-', "_") == *m)
                })
        })
        .expect("a sentinel module")
}

fn real_modaliases() -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![PathBuf::from("/sys/devices")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && !ft.is_symlink() {
                stack.push(e.path());
            } else if e.file_name() == "modalias"
                && let Ok(s) = std::fs::read_to_string(e.path())
                && !s.trim().is_empty()
            {
                out.insert(s.trim().to_owned());
            }
        }
    }
    out.into_iter().collect()
}

/// Runs `modprobe -a --show-depends` over a batch and splits the output per alias.
fn modprobe_batch(
    root: &Path,
    version: &str,
    sentinel: &str,
    config: Option<&Path>,
    batch: &[String],
) -> Vec<Vec<String>> {
    let mut cmd = Command::new("modprobe");
    if let Some(config) = config {
        cmd.arg("-C").arg(config);
    }
    cmd.arg("-a")
        .arg("--show-depends")
        .arg("-d")
        .arg(root)
        .arg("-S")
        .arg(version)
        .arg("--");
    for alias in batch {
        cmd.arg(alias).arg(sentinel);
    }
    let out = cmd.output().expect("run modprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let marker = format!("/{sentinel}.ko");
    let mut groups = vec![Vec::new()];
    for line in text.lines() {
        let is_sentinel = line.starts_with("insmod ")
            && line
                .trim_end()
                .split('/')
                .next_back()
                .is_some_and(|f| format!("/{f}").starts_with(&marker));
        if is_sentinel {
            groups.push(Vec::new());
        } else if let Some(g) = groups.last_mut() {
            g.push(line.to_owned());
        }
    }
    groups.pop();
    assert_eq!(
        groups.len(),
        batch.len(),
        "modprobe output did not split into one group per alias"
    );
    groups
}

fn dedup_lines(lines: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    lines
        .into_iter()
        .filter(|l| seen.insert(l.clone()))
        .collect()
}

/// Every modalias of the reference QEMU guest (`shared/anchor/devices.sh`'s hardware on
/// Debian's 6.12 kernel) after udevd loaded its drivers, dumped by `scripts/guest-modaliases`.
const GUEST: &str = include_str!("../fixtures/guest-6.12-modaliases.txt");

#[test]
fn plans_equal_modprobe_show_depends_on_real_debian_kernels() {
    let kernels = match kernels() {
        Ok(k) => k,
        Err(reason) => {
            test_support::skip_or_fail("differential test against libkmod", &reason);
            return;
        }
    };
    let real = real_modaliases();
    for Kernel { version, root } in kernels {
        let dir = root.join("lib/modules").join(&version);
        let resolver = Resolver::open(ResolverOptions {
            module_dir: dir.clone(),
            ..ResolverOptions::default()
        })
        .expect("open index");
        let sentinel = sentinel(&resolver, &dir);
        let mut corpus: BTreeSet<String> = resolver
            .index()
            .alias_patterns()
            .expect("alias patterns")
            .into_iter()
            .filter_map(|(p, _)| kmod_loader::fnmatch::example_for(&p))
            .filter_map(|e| String::from_utf8(e).ok())
            .collect();
        corpus.extend(real.iter().cloned());
        corpus.extend(GUEST.lines().map(str::to_owned));
        let corpus: Vec<String> = corpus.into_iter().collect();
        let batches: Vec<&[String]> = corpus.chunks(BATCH).collect();
        let expected: Vec<Vec<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = batches
                .chunks(batches.len().div_ceil(2))
                .map(|part| {
                    let (root, version, sentinel) = (&root, &version, &sentinel);
                    s.spawn(move || {
                        part.iter()
                            .flat_map(|b| modprobe_batch(root, version, sentinel, None, b))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("modprobe thread"))
                .collect()
        });
        let mut mismatches = Vec::new();
        let mut non_empty = 0usize;
        for (alias, want) in corpus.iter().zip(&expected) {
            let want = dedup_lines(want.clone());
            let got = match resolver.plan(alias) {
                Ok(plan) => plan.show_depends(),
                Err(e) => vec![format!("error: {e}")],
            };
            if !want.is_empty() {
                non_empty += 1;
            }
            if got != want {
                mismatches.push(format!("{alias}\n  libkmod: {want:?}\n  ours:    {got:?}"));
            }
        }
        println!(
            "kernel {version}, index in place: {} modaliases compared ({} from this machine's /sys, {} from the QEMU guest, {non_empty} with a non-empty plan), {} mismatches",
            corpus.len(),
            real.len(),
            GUEST.lines().count(),
            mismatches.len()
        );
        assert!(corpus.len() >= 5000, "corpus too small: {}", corpus.len());
        assert!(
            mismatches.is_empty(),
            "{} of {} plans differ from modprobe on {version}; first ones:\n{}",
            mismatches.len(),
            corpus.len(),
            mismatches
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A modprobe.d exercising every directive, passed to both sides (`modprobe -C`).
const CONFIG: &str = r"# config aliases win over modules.dep and modules.alias
alias my-nic igb
alias net-pf-99 e1000e
alias pci:v00008086d00001533* e1000e
alias sound-card-* snd-hda-intel
blacklist pcspkr
blacklist dca
options igb debug=2
options my_nic opt_from_alias=1
options dca	extra=3
options snd-hda-intel index=1 \
    model=auto
softdep uhci-hcd pre: ehci-hcd post: pcspkr
softdep e1000e pre: platform:pcspkr
install dummy /bin/echo dummy-install $CMDLINE_OPTS
install my-fake-cmd /bin/true
remove my-fake-remove /bin/true
options dummy numdummies=3
not-a-directive foo
";

#[test]
fn modprobe_d_handling_equals_modprobe_with_the_same_configuration() {
    let kernels = match kernels() {
        Ok(k) => k,
        Err(reason) => {
            test_support::skip_or_fail("modprobe.d differential test against libkmod", &reason);
            return;
        }
    };
    let conf = tempfile::tempdir().expect("tempdir");
    std::fs::write(conf.path().join("test.conf"), CONFIG).expect("write config");
    let mut queries: Vec<String> = [
        "my-nic",
        "net-pf-99",
        "pci:v00008086d00001533sv0sd0bc02sc00i00",
        "sound-card-0",
        "platform:pcspkr",
        "pcspkr",
        "igb",
        "pci:v00001234d00005678sv0sd0bc0Csc03i00",
        "dummy",
        "my-fake-cmd",
        "my-fake-remove",
        "e1000e",
        "uhci_hcd",
        "snd-hda-intel",
        "ext4",
        "no-such-module",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    queries.extend(real_modaliases());
    for Kernel { version, root } in kernels {
        let dir = root.join("lib/modules").join(&version);
        let resolver = Resolver::open(ResolverOptions {
            module_dir: dir.clone(),
            config_dirs: vec![conf.path().to_owned()],
            ..ResolverOptions::default()
        })
        .expect("open index");
        let sentinel = sentinel(&resolver, &dir);
        let expected = modprobe_batch(&root, &version, &sentinel, Some(conf.path()), &queries);
        let mut mismatches = Vec::new();
        for (alias, want) in queries.iter().zip(expected) {
            let want = dedup_lines(want);
            let got = resolver
                .plan(alias)
                .map(|p| p.show_depends())
                .unwrap_or_default();
            if got != want {
                mismatches.push(format!("{alias}\n  libkmod: {want:?}\n  ours:    {got:?}"));
            }
        }
        println!(
            "kernel {version}: {} queries with a crafted modprobe.d compared, {} mismatches",
            queries.len(),
            mismatches.len()
        );
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}

#[test]
fn text_index_fallback_gives_the_same_plans_as_the_binary_index() {
    let kernels = match kernels() {
        Ok(k) => k,
        Err(reason) => {
            test_support::skip_or_fail("text fallback test on real kernels", &reason);
            return;
        }
    };
    for Kernel { version, root } in kernels {
        let dir = root.join("lib/modules").join(&version);
        let text = common::text_only(&dir);
        let options = |module_dir: PathBuf| ResolverOptions {
            module_dir,
            config_dirs: Vec::new(),
            cmdline: None,
        };
        let bin = Resolver::open(options(dir.clone())).expect("binary index");
        let txt = Resolver::open(options(text.path().to_owned())).expect("text index");
        let forms = txt.index().forms();
        assert_eq!(
            (forms.alias, forms.dep, forms.builtin, forms.builtin_alias),
            (Form::Text, Form::Text, Form::Text, Form::Text)
        );
        let corpus: BTreeSet<String> = bin
            .index()
            .alias_patterns()
            .expect("alias patterns")
            .into_iter()
            .filter_map(|(p, _)| kmod_loader::fnmatch::example_for(&p))
            .filter_map(|e| String::from_utf8(e).ok())
            .chain(real_modaliases())
            .collect();
        // Text alias indexes are scanned pattern by pattern: a sample of the corpus.
        let sample: Vec<&String> = corpus.iter().step_by(TEXT_STRIDE).collect();
        let (bin_prefix, txt_prefix) =
            (dir.display().to_string(), text.path().display().to_string());
        let mut mismatches = Vec::new();
        let plan = |resolver: &Resolver, alias: &str| -> Vec<String> {
            resolver
                .plan(alias)
                .expect("plan")
                .show_depends()
                .into_iter()
                .map(|l| l.replace(&txt_prefix, &bin_prefix))
                .collect()
        };
        let mut planned = 0;
        for alias in &sample {
            let want = bin.plan(alias).expect("plan").show_depends();
            planned += usize::from(!want.is_empty());
            let got = plan(&txt, alias);
            if got != want {
                mismatches.push(format!("{alias}\n  binary: {want:?}\n  text:   {got:?}"));
            }
        }
        println!(
            "kernel {version}: {} modaliases, text fallback vs binary index: {} mismatches",
            sample.len(),
            mismatches.len()
        );
        assert!(
            sample.len() > 200 && planned > 100,
            "{version}: text fallback sample too small: {} modaliases, {planned} with a plan",
            sample.len()
        );
        assert!(
            mismatches.is_empty(),
            "{}",
            mismatches
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
