//! Every index error path: typed errors naming the file and the fault, and fallback from a
//! corrupt binary index to the text file.

use crate::common;

use common::{Fixture, FixtureModule, encode_index};
use kmod_loader::Config;
use kmod_loader::binindex::BinIndex;
use kmod_loader::index::Form;
use kmod_loader::{IndexError, ModuleIndex, ResolveError, Resolver};

fn fixture() -> Fixture {
    Fixture::new(
        &[
            FixtureModule {
                path: "kernel/a/foo.ko.xz",
                deps: &["kernel/a/bar.ko.xz"],
            },
            FixtureModule {
                path: "kernel/a/bar.ko.xz",
                deps: &[],
            },
        ],
        &[("pci:v00001234d*", "foo"), ("usb:v1D6Bp*d0[1-9A]*", "bar")],
        &["ext4"],
        &[("acpi*:PNP0A08:*", "pci_root")],
        "",
    )
}

fn bin(data: Vec<u8>) -> Result<BinIndex, IndexError> {
    BinIndex::from_bytes("test.bin".into(), data)
}

fn walk(b: &BinIndex) -> Result<usize, IndexError> {
    let mut n = 0;
    b.for_each(|_, _, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

#[test]
fn a_valid_binary_index_is_read_with_prefixes_children_and_values() {
    let data = encode_index(&[("abc", 1, "x"), ("abd", 2, "y"), ("ab", 3, "z")]);
    let b = bin(data).expect("valid");
    assert_eq!(walk(&b).expect("walk"), 3);
    assert_eq!(b.search(b"abd").expect("search"), Some(&b"y"[..]));
    assert_eq!(b.search(b"ab").expect("search"), Some(&b"z"[..]));
    assert_eq!(b.search(b"a").expect("search"), None);
    assert_eq!(b.search(b"abcd").expect("search"), None);
}

#[test]
fn bad_magic_is_reported() {
    let mut data = encode_index(&[("a", 0, "x")]);
    data[0] = 0;
    let err = bin(data).expect_err("bad magic");
    assert!(
        matches!(
            err,
            IndexError::BadMagic {
                found: 0x0007_F457,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("test.bin"));
}

#[test]
fn bad_major_version_is_reported() {
    let mut data = encode_index(&[("a", 0, "x")]);
    data[4..8].copy_from_slice(&0x0003_0001u32.to_be_bytes());
    assert!(matches!(
        bin(data),
        Err(IndexError::BadVersion {
            found: 0x0003_0001,
            ..
        })
    ));
}

#[test]
fn truncated_header_and_nodes_are_reported() {
    assert!(matches!(
        bin(vec![0xB0, 0x07]),
        Err(IndexError::Truncated { .. })
    ));
    let data = encode_index(&[("abc", 0, "value")]);
    let cut = data[..data.len() - 3].to_vec();
    let err = bin(cut).and_then(|b| walk(&b)).expect_err("truncated");
    assert!(matches!(err, IndexError::Truncated { .. }), "{err}");
}

#[test]
fn dangling_offsets_are_reported() {
    let mut data = encode_index(&[("a", 0, "x")]);
    let flags = u32::from_be_bytes([data[8], data[9], data[10], data[11]]) & 0xF000_0000;
    data[8..12].copy_from_slice(&(flags | 0x00FF_FFFF).to_be_bytes());
    assert!(matches!(
        bin(data.clone()),
        Err(IndexError::DanglingOffset {
            offset: 0x00FF_FFFF,
            ..
        })
    ));
    // Into the header.
    data[8..12].copy_from_slice(&(flags | 4).to_be_bytes());
    assert!(matches!(
        bin(data),
        Err(IndexError::DanglingOffset { offset: 4, .. })
    ));
}

#[test]
fn a_child_pointing_back_to_the_root_is_a_loop_not_a_hang() {
    // Root at offset 12: no prefix, children 'a'..'a' -> root itself.
    let mut data = Vec::new();
    data.extend_from_slice(&0xB007_F457u32.to_be_bytes());
    data.extend_from_slice(&0x0002_0001u32.to_be_bytes());
    data.extend_from_slice(&(12u32 | 0x2000_0000).to_be_bytes());
    data.extend_from_slice(b"aa");
    data.extend_from_slice(&(12u32 | 0x2000_0000).to_be_bytes());
    let b = bin(data).expect("header is fine");
    assert!(matches!(walk(&b), Err(IndexError::Loop { offset: 12, .. })));
    // Exact search terminates too: every step consumes a key byte.
    assert_eq!(b.search(b"aaaa").expect("search"), None);
}

#[test]
fn an_inverted_child_range_is_reported() {
    let mut data = Vec::new();
    data.extend_from_slice(&0xB007_F457u32.to_be_bytes());
    data.extend_from_slice(&0x0002_0001u32.to_be_bytes());
    data.extend_from_slice(&(12u32 | 0x2000_0000).to_be_bytes());
    data.extend_from_slice(b"za");
    assert!(matches!(
        bin(data),
        Err(IndexError::BadChildRange {
            first: b'z',
            last: b'a',
            ..
        })
    ));
}

#[test]
fn an_absurd_value_count_is_truncation_not_an_allocation() {
    let mut data = Vec::new();
    data.extend_from_slice(&0xB007_F457u32.to_be_bytes());
    data.extend_from_slice(&0x0002_0001u32.to_be_bytes());
    data.extend_from_slice(&(12u32 | 0x4000_0000).to_be_bytes());
    data.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        bin(data),
        Err(IndexError::Truncated { what: "values", .. })
    ));
}

#[test]
fn a_corrupt_binary_index_falls_back_to_the_text_files() {
    let f = fixture();
    f.write("modules.alias.bin", b"garbage");
    f.write(
        "modules.dep.bin",
        &[0xB0, 0x07, 0xF4, 0x57, 0, 9, 0, 1, 0, 0, 0, 0],
    );
    f.write("modules.builtin.bin", b"");
    f.write("modules.builtin.alias.bin", b"\xb0\x07");
    let idx = ModuleIndex::open(f.dir()).expect("text fallback");
    let forms = idx.forms();
    assert_eq!(
        (forms.alias, forms.dep, forms.builtin, forms.builtin_alias),
        (Form::Text, Form::Text, Form::Text, Form::Text)
    );
    assert_eq!(
        idx.match_aliases("pci:v00001234d0001").expect("lookup"),
        vec!["foo"]
    );
    assert_eq!(
        idx.match_aliases("usb:v1D6Bp0001d0A00").expect("lookup"),
        vec!["bar"]
    );
    assert!(idx.dep_entry("foo").expect("dep").is_some());
    assert!(idx.is_builtin("ext4").expect("builtin"));
    assert_eq!(
        idx.match_builtin_aliases("acpi:PNP0A08:").expect("lookup"),
        vec!["pci_root"]
    );
}

#[test]
fn binary_indexes_are_preferred_when_valid() {
    let f = fixture();
    let idx = ModuleIndex::open(f.dir()).expect("open");
    let forms = idx.forms();
    assert_eq!(
        (forms.alias, forms.dep, forms.builtin, forms.builtin_alias),
        (Form::Binary, Form::Binary, Form::Binary, Form::Binary)
    );
}

#[test]
fn missing_required_indexes_are_a_typed_error_naming_both_files() {
    let f = fixture();
    f.remove("modules.alias.bin");
    f.remove("modules.alias");
    let err = ModuleIndex::open(f.dir()).expect_err("missing");
    assert!(
        matches!(
            err,
            IndexError::Missing {
                name: "modules.alias",
                ..
            }
        ),
        "{err}"
    );
    let f = fixture();
    f.write("modules.dep.bin", b"not an index file");
    f.remove("modules.dep");
    let err = ModuleIndex::open(f.dir()).expect_err("missing");
    assert!(
        matches!(
            err,
            IndexError::Missing {
                name: "modules.dep",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("bad magic"), "{err}");
}

#[test]
fn malformed_text_lines_are_reported_with_their_line_number() {
    let f = fixture();
    f.remove("modules.alias.bin");
    f.write("modules.alias", b"alias ok foo\nnonsense\n");
    let err = ModuleIndex::open(f.dir()).expect_err("bad line");
    assert!(
        err.to_string().contains("modules.alias:2: malformed line"),
        "{err}"
    );
}

#[test]
fn optional_indexes_may_be_absent() {
    let f = fixture();
    for name in [
        "modules.builtin.bin",
        "modules.builtin",
        "modules.builtin.alias.bin",
        "modules.builtin.modinfo",
        "modules.softdep",
    ] {
        f.remove(name);
    }
    let idx = ModuleIndex::open(f.dir()).expect("open");
    assert_eq!(idx.forms().builtin, Form::Absent);
    assert!(!idx.is_builtin("ext4").expect("builtin"));
}

#[test]
fn a_module_path_escaping_the_module_directory_is_refused() {
    let f = fixture();
    let line = "../../../etc/evil.ko: kernel/a/bar.ko.xz";
    f.write(
        "modules.dep.bin",
        &encode_index(&[("foo", 0, line), ("bar", 1, "kernel/a/bar.ko.xz:")]),
    );
    let r = Resolver::from_parts(ModuleIndex::open(f.dir()).expect("open"), Config::default());
    let err = r.plan("pci:v00001234d0001").expect_err("escape");
    assert!(
        matches!(&err, ResolveError::Index(IndexError::PathEscape { module_path, .. }) if module_path == "../../../etc/evil.ko"),
        "{err}"
    );
    // An escaping dependency path is refused too, and so is an absolute path.
    f.write(
        "modules.dep.bin",
        &encode_index(&[("foo", 0, "kernel/a/foo.ko.xz: /lib/x.ko")]),
    );
    let r = Resolver::from_parts(ModuleIndex::open(f.dir()).expect("open"), Config::default());
    assert!(matches!(
        r.plan("foo"),
        Err(ResolveError::Index(IndexError::PathEscape { .. }))
    ));
}

#[test]
fn oversized_index_files_are_refused_before_reading() {
    let f = fixture();
    let file = std::fs::File::create(f.dir().join("modules.dep.bin")).expect("create");
    file.set_len(kmod_loader::binindex::MAX_FILE_LEN + 1)
        .expect("sparse file");
    let err = BinIndex::open(&f.dir().join("modules.dep.bin")).expect_err("too large");
    assert!(matches!(err, IndexError::TooLarge { .. }), "{err}");
}

#[test]
fn keys_longer_than_the_limit_are_reported() {
    // One root node whose prefix is the whole (too long) key, with one value.
    let mut data = Vec::new();
    data.extend_from_slice(&0xB007_F457u32.to_be_bytes());
    data.extend_from_slice(&0x0002_0001u32.to_be_bytes());
    data.extend_from_slice(&(12u32 | 0x8000_0000 | 0x4000_0000).to_be_bytes());
    data.resize(data.len() + kmod_loader::binindex::MAX_KEY_LEN + 1, b'k');
    data.push(0);
    data.extend_from_slice(&1u32.to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(b"x\0");
    let b = bin(data).expect("header");
    assert!(matches!(walk(&b), Err(IndexError::KeyTooLong { .. })));
}

#[test]
fn more_entries_than_the_limit_are_reported() {
    let count = kmod_loader::binindex::MAX_ENTRIES + 1;
    let mut data = Vec::new();
    data.extend_from_slice(&0xB007_F457u32.to_be_bytes());
    data.extend_from_slice(&0x0002_0001u32.to_be_bytes());
    data.extend_from_slice(&(12u32 | 0x4000_0000).to_be_bytes());
    data.extend_from_slice(&(count as u32).to_be_bytes());
    // Each value: priority 0 and an empty NUL-terminated string.
    data.resize(data.len() + count * 5, 0);
    let b = bin(data).expect("header");
    assert!(matches!(walk(&b), Err(IndexError::TooManyEntries { .. })));
}

#[test]
fn a_module_name_that_is_not_utf8_falls_back_to_the_text_index() {
    let f = fixture();
    let mut data = encode_index(&[("pci:v00001234d*", 0, "foo")]);
    let at = data.windows(3).position(|w| w == b"foo").expect("value");
    data[at] = 0xFF;
    f.write("modules.alias.bin", &data);
    let idx = ModuleIndex::open(f.dir()).expect("fallback");
    assert_eq!(idx.forms().alias, Form::Text);
    assert_eq!(
        idx.match_aliases("pci:v00001234d0001").expect("lookup"),
        vec!["foo"]
    );
    // And the reader reports the fault itself.
    let b = BinIndex::from_bytes("x.bin".into(), data).expect("header");
    let mut err = None;
    let _ = b.for_each(|_, _, v| {
        if std::str::from_utf8(v).is_err() {
            err = Some(());
        }
        Ok(())
    });
    assert!(err.is_some());
}

#[test]
fn alias_patterns_lists_the_accepted_patterns_in_both_forms() {
    let f = Fixture::new(
        &[FixtureModule {
            path: "kernel/a/foo.ko.xz",
            deps: &[],
        }],
        // The second pattern ends in a lone backslash: it can never match.
        &[("pci:v1*", "foo"), ("bad*\\", "foo")],
        &[],
        &[],
        "",
    );
    let want = vec![(b"pci:v1*".to_vec(), "foo".to_owned())];
    let idx = ModuleIndex::open(f.dir()).expect("open");
    assert_eq!(idx.forms().alias, Form::Binary);
    assert_eq!(idx.alias_count(), 1);
    assert_eq!(idx.alias_patterns().expect("patterns"), want);
    f.remove("modules.alias.bin");
    let idx = ModuleIndex::open(f.dir()).expect("open");
    assert_eq!(idx.forms().alias, Form::Text);
    assert_eq!(idx.alias_count(), 1);
    assert_eq!(idx.alias_patterns().expect("patterns"), want);
}
