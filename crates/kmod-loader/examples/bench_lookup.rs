//! Times index loading and alias lookups of this crate over a corpus, for `scripts/kmod-bench`.
//!
//! Usage:
//! * `bench_lookup corpus MODULE_DIR` prints the corpus: one concrete string per
//!   `modules.alias` pattern ([`kmod_loader::fnmatch::example_for`]) plus every modalias under
//!   `/sys/devices`, deduplicated and sorted.
//! * `bench_lookup time MODULE_DIR CORPUS_FILE [ROUNDS]` — the corpus has one modalias per
//!   line; the index is looked up in place (`Resolver::open`, as the daemon does). Prints
//!   `load_ms`, `avg_us`, `worst_us`, `worst_alias`, `lookups`, `found` as `key=value` lines.
//!
//! Each lookup is the whole `kmod_module_new_from_lookup` equivalent (`Resolver::lookup`,
//! modprobe.d aliases included); the worst is the slowest alias by its median over the rounds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kmod_loader::{Resolver, ResolverOptions};

fn sys_modaliases(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && !ft.is_symlink() {
            sys_modaliases(&e.path(), out);
        } else if e.file_name() == "modalias"
            && let Ok(s) = std::fs::read_to_string(e.path())
            && !s.trim().is_empty()
        {
            out.insert(s.trim().to_owned());
        }
    }
}

fn corpus(dir: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let index = kmod_loader::ModuleIndex::open(&dir)?;
    let mut out: BTreeSet<String> = index
        .alias_patterns()?
        .into_iter()
        .filter_map(|(p, _)| kmod_loader::fnmatch::example_for(&p))
        .filter_map(|e| String::from_utf8(e).ok())
        .collect();
    sys_modaliases(Path::new("/sys/devices"), &mut out);
    for line in out {
        println!("{line}");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("missing mode (corpus|time)")?;
    let dir = PathBuf::from(args.next().ok_or("missing MODULE_DIR")?);
    if mode == "corpus" {
        return corpus(dir);
    }
    let corpus = std::fs::read_to_string(args.next().ok_or("missing CORPUS_FILE")?)?;
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let aliases: Vec<&str> = corpus.lines().filter(|l| !l.is_empty()).collect();

    let mut load_ms = f64::MAX;
    let mut resolver = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let options = ResolverOptions {
            module_dir: dir.clone(),
            ..ResolverOptions::default()
        };
        let r = Resolver::open(options)?;
        load_ms = load_ms.min(t.elapsed().as_secs_f64() * 1e3);
        resolver = Some(r);
    }
    let resolver = resolver.ok_or("no rounds")?;

    let mut per_alias: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); aliases.len()];
    let mut total = 0f64;
    let mut found = 0usize;
    for _ in 0..rounds {
        for (i, alias) in aliases.iter().enumerate() {
            let t = Instant::now();
            let lookup = resolver.lookup(alias);
            let us = t.elapsed().as_secs_f64() * 1e6;
            if lookup.is_ok_and(|l| !l.modules.is_empty()) {
                found += 1;
            }
            per_alias[i].push(us);
            total += us;
        }
    }
    let medians: Vec<f64> = per_alias
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let (worst_i, worst) = medians
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .ok_or("empty corpus")?;
    println!("load_ms={load_ms:.3}");
    println!("avg_us={:.3}", total / (aliases.len() * rounds) as f64);
    println!("worst_us={worst:.3}");
    println!("worst_alias={}", aliases[worst_i]);
    println!("lookups={}", aliases.len());
    println!("found={}", found / rounds);
    Ok(())
}
