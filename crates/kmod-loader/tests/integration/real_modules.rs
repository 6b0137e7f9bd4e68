//! Real compressed modules from Debian's kernel package (fetched by `scripts/kernels`):
//! in-process decompression must give exactly what `xz -d` gives.

use std::path::PathBuf;
use std::process::Command;

use kmod_loader::load::Compression;

#[test]
fn debian_6_12_ko_xz_modules_decompress_byte_identically_with_xz() {
    let dir = match test_support::kernel("6.12.") {
        Ok(kernel) => kernel.module_dir(),
        Err(why) => return test_support::skip_or_fail("real-module decompression test", &why),
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
