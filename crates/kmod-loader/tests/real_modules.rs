//! Real compressed modules from Debian's kernel package (fetched by `scripts/kernels`):
//! in-process decompression must give exactly what `xz -d` gives.

use std::path::PathBuf;
use std::process::Command;

use kmod_loader::load::Compression;

/// The module tree of the 6.12 kernel from `scripts/kernels`' list, if fetched.
fn kernel_6_12() -> Option<PathBuf> {
    let cache = std::env::var_os("DEVMGR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/devmgr")))?;
    let list = std::fs::read_to_string(cache.join("kernels/list")).ok()?;
    list.lines().find_map(|line| {
        let (version, root) = line.split_once(' ')?;
        version
            .starts_with("6.12.")
            .then(|| PathBuf::from(root).join("lib/modules").join(version))
    })
}

fn skip_or_fail(why: &str) {
    if std::env::var("DEVMGR_REQUIRE_ALL_TESTS").as_deref() == Ok("1") {
        panic!("{why}, and DEVMGR_REQUIRE_ALL_TESTS=1 forbids skipping");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipping real-module test: {why} (run scripts/kernels)"
    );
}

#[test]
fn debian_6_12_ko_xz_modules_decompress_byte_identically_with_xz() {
    let Some(dir) = kernel_6_12() else {
        return skip_or_fail("the Debian 6.12 kernel package is not fetched");
    };
    let mut files: Vec<PathBuf> = walk(&dir.join("kernel"));
    files.sort();
    assert!(
        files.len() > 4000,
        "{} modules under {}",
        files.len(),
        dir.display()
    );
    // Every 40th module: about 100 files, small and large, across the tree.
    let sample: Vec<&PathBuf> = files.iter().step_by(40).collect();
    let mut bytes = 0;
    for path in &sample {
        let data = std::fs::read(path).expect("read module");
        assert_eq!(
            Compression::detect(&data),
            Compression::Xz,
            "{}",
            path.display()
        );
        let ours = Compression::Xz.decompress(&data).expect("decompress");
        let theirs = Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .expect("xz -dc");
        assert!(theirs.status.success());
        assert!(
            ours == theirs.stdout,
            "{} differs from xz -d",
            path.display()
        );
        assert!(ours.starts_with(b"\x7fELF"));
        bytes += ours.len();
    }
    eprintln!(
        "{} modules, {bytes} bytes decompressed, identical to xz -d",
        sample.len()
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.to_string_lossy().ends_with(".ko.xz") {
            out.push(path);
        }
    }
    out
}
