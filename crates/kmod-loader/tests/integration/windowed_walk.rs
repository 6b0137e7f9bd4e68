//! `BinFile` (an index walked through windows of the file) gives exactly what `BinIndex` (the
//! whole file in memory) gives: the same entries in the same order, or the same error — on
//! Debian's real indexes and on every input of the fuzz corpus, with windows small enough
//! that nodes straddle their edges.

use std::path::{Path, PathBuf};

use kmod_loader::IndexError;
use kmod_loader::binindex::{BinFile, BinIndex, WINDOW};

type Entries = Vec<(Vec<u8>, u32, Vec<u8>)>;

fn in_memory(path: &Path) -> Result<Entries, String> {
    let bin = BinIndex::open(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    bin.for_each(|k, p, v| {
        out.push((k.to_vec(), p, v.to_vec()));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The entries, and the bytes read from the file.
fn windowed(path: &Path, window: usize) -> (Result<Entries, String>, u64) {
    let mut bin = match BinFile::open(path) {
        Ok(bin) => bin.with_window(window),
        Err(e) => return (Err(e.to_string()), 0),
    };
    let mut out = Vec::new();
    let walked = bin.for_each(|k, p, v| {
        out.push((k.to_vec(), p, v.to_vec()));
        Ok::<(), IndexError>(())
    });
    (
        walked.map(|()| out).map_err(|e| e.to_string()),
        bin.bytes_read(),
    )
}

fn debian_module_dirs() -> Result<Vec<PathBuf>, String> {
    Ok(test_support::kernels()?
        .into_iter()
        .map(|kernel| kernel.module_dir())
        .collect())
}

#[test]
fn debian_indexes_walk_the_same_through_windows_and_read_each_byte_about_twice() {
    let dirs = match debian_module_dirs() {
        Ok(dirs) => dirs,
        Err(reason) => {
            return test_support::skip_or_fail("windowed walk of Debian indexes", &reason);
        }
    };
    for dir in dirs {
        for name in [
            "modules.alias.bin",
            "modules.dep.bin",
            "modules.symbols.bin",
        ] {
            let path = dir.join(name);
            let whole = in_memory(&path).expect("Debian's index is valid");
            let len = std::fs::metadata(&path).expect("stat").len();
            for window in [WINDOW, 4096, 257] {
                let (walked, read) = windowed(&path, window);
                assert_eq!(
                    walked.as_ref(),
                    Ok(&whole),
                    "{} window {window}",
                    path.display()
                );
                if window == WINDOW {
                    // A depth-first walk mostly stays within its few windows: each byte is
                    // read about twice (2.1x for Debian 12's alias files).
                    assert!(
                        read <= 3 * len,
                        "{}: read {read} bytes of a {len}-byte file",
                        path.display()
                    );
                    println!(
                        "{}: {} entries, read {read} of {len} bytes",
                        path.display(),
                        whole.len()
                    );
                }
            }
        }
    }
}

#[test]
fn every_fuzz_corpus_index_walks_the_same_or_fails_the_same_through_windows() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/index_reader");
    let inputs = std::fs::read_dir(&corpus).expect("the fuzz corpus is checked in");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut sections, mut failing) = (0, 0);
    for input in inputs {
        let data = std::fs::read(input.expect("entry").path()).expect("read input");
        // Sections are separated as the fuzz target separates them; the last one holds queries.
        let parts: Vec<&[u8]> = split(&data, b"\n--8<--\n");
        for part in parts.iter().take(4) {
            let path = tmp.path().join("index.bin");
            std::fs::write(&path, part).expect("write section");
            let whole = in_memory(&path);
            for window in [WINDOW, 64, 16] {
                let (walked, _) = windowed(&path, window);
                assert_eq!(
                    walked,
                    whole,
                    "window {window}, section of {} bytes",
                    part.len()
                );
            }
            sections += 1;
            failing += usize::from(whole.is_err());
        }
    }
    assert!(sections > 100, "only {sections} sections in the corpus");
    assert!(
        failing > 0 && failing < sections,
        "{failing} of {sections} fail: both kinds are covered"
    );
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}
