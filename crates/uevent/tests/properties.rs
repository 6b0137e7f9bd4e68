//! Property tests: encode→parse round-trips, and no input makes a parser panic.
//!
//! The number of cases per property is `UEVENT_PROPTEST_CASES` (default 256);
//! `scripts/test` runs 100,000.

use proptest::collection::vec;
use proptest::prelude::*;
use uevent::{Action, MAX_FIELDS, Uevent};

fn config() -> ProptestConfig {
    let cases = std::env::var("UEVENT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

/// Plain absolute paths: components never start with '.', so none is "." or "..".
fn devpath() -> impl Strategy<Value = String> {
    vec("[a-z0-9:_@-][a-z0-9:._@-]{0,11}", 1..7).prop_map(|c| format!("/{}", c.join("/")))
}

/// Any bytes but NUL and newline.
fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![1u8..=9, 11u8..=255], 0..max)
}

/// Kernel-style keys, never one of the four typed fields (those are 4+ upper-case letters
/// with no digit; these keys all end in a digit or underscore).
fn key() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_]{0,14}[0-9_]"
}

fn properties() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    vec((key(), text(48)), 0..(MAX_FIELDS - 4))
}

fn kernel_event() -> impl Strategy<Value = Uevent> {
    (action(), devpath(), text(24), 1..=u64::MAX, properties()).prop_map(
        |(action, devpath, subsystem, seqnum, props)| {
            let mut builder = Uevent::builder(action, devpath)
                .subsystem(subsystem)
                .seqnum(seqnum);
            for (key, value) in props {
                builder = builder.property(key, value);
            }
            match builder.build() {
                Ok(event) => event,
                Err(err) => panic!("the strategy made an invalid event: {err}"),
            }
        },
    )
}

/// What every accepted event satisfies, however it was made.
fn check_invariants(event: &Uevent) -> Result<(), TestCaseError> {
    prop_assert!(event.devpath().starts_with(b"/"));
    prop_assert!(event.properties().len() <= MAX_FIELDS);
    for (key, value) in event.properties() {
        prop_assert!(!key.is_empty() && !key.contains(&b'=') && !key.contains(&0));
        prop_assert!(!value.contains(&b'\n') && !value.contains(&0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn encoded_events_parse_back_equal(event in kernel_event()) {
        let datagram = event.encode().expect("built with subsystem and seqnum");
        let parsed = Uevent::parse_kernel(&datagram);
        prop_assert_eq!(parsed.as_ref(), Ok(&event));
        // And the encoding is canonical: encoding the parsed event gives the same bytes.
        prop_assert_eq!(parsed.ok().and_then(|e| e.encode().ok()), Some(datagram));
    }

    #[test]
    fn sysfs_lines_parse_back_to_the_same_properties(
        devpath in devpath(),
        props in properties(),
    ) {
        let mut content = Vec::new();
        let mut builder = Uevent::builder(Action::Add, &devpath);
        for (key, value) in &props {
            content.extend_from_slice(key.as_bytes());
            content.push(b'=');
            content.extend_from_slice(value);
            content.push(b'\n');
            builder = builder.property(key, value);
        }
        let expected = builder.build().expect("valid parts");
        let parsed = Uevent::parse_sysfs(devpath.as_bytes(), &content);
        prop_assert_eq!(parsed, Ok(expected));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_kernel_parser(bytes in vec(any::<u8>(), 0..10_000)) {
        if let Ok(event) = Uevent::parse_kernel(&bytes) {
            check_invariants(&event)?;
            let again = Uevent::parse_kernel(&event.encode().expect("kernel events encode"));
            prop_assert_eq!(again, Ok(event));
        }
    }

    #[test]
    fn mutated_datagrams_never_panic_and_stay_consistent(
        event in kernel_event(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut bytes = event.encode().expect("built with subsystem and seqnum");
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        if let Ok(parsed) = Uevent::parse_kernel(&bytes) {
            check_invariants(&parsed)?;
            let again = Uevent::parse_kernel(&parsed.encode().expect("kernel events encode"));
            prop_assert_eq!(again, Ok(parsed));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_sysfs_parser(
        devpath in vec(any::<u8>(), 0..64),
        content in vec(any::<u8>(), 0..10_000),
    ) {
        if let Ok(event) = Uevent::parse_sysfs(&devpath, &content) {
            check_invariants(&event)?;
            prop_assert_eq!(event.devpath(), &devpath[..]);
        }
    }
}
