//! Fuzzes the uevent parsers with arbitrary bytes.
//!
//! * The whole input is a kernel datagram for `Uevent::parse_kernel`. An accepted event must
//!   satisfy the documented invariants, encode, parse back equal, and its encoding must be
//!   canonical (encoding the re-parsed event gives the same bytes) and no longer than the input.
//! * The whole input is also the content of a sysfs `uevent` file for `Uevent::parse_sysfs`
//!   with a fixed devpath, and, when it holds a newline, its first line is used as the devpath
//!   and the rest as the content (so devpath validation is fuzzed too). An accepted event must
//!   keep the devpath, be an `add` without subsystem or sequence number, and, given a subsystem
//!   and sequence number through the builder, survive the kernel round trip.
//!
//! Nothing may panic; every accessor and error message is exercised.
#![no_main]

use std::num::NonZeroU64;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use uevent::{Action, MAX_FIELDS, MAX_LEN, Uevent};

const FIXED_DEVPATH: &[u8] = b"/devices/pci0000:00/0000:00:05.0";

fuzz_target!(|data: &[u8]| {
    kernel(data);
    sysfs(FIXED_DEVPATH, data);
    if let Some(nl) = data.iter().position(|&b| b == b'\n') {
        sysfs(&data[..nl], &data[nl + 1..]);
    }
});

fn kernel(data: &[u8]) {
    let event = match Uevent::parse_kernel(data) {
        Ok(event) => event,
        Err(err) => {
            std::hint::black_box(err.to_string());
            return;
        }
    };
    assert!(data.len() <= MAX_LEN);
    check_common(&event);
    assert!(
        event.subsystem().is_some(),
        "kernel events have a subsystem"
    );
    assert!(event.seqnum().is_some(), "kernel events have a seqnum");
    assert!(event.properties().len() + 4 <= MAX_FIELDS);
    let subsystem = event.subsystem().unwrap_or_default();
    assert!(!subsystem.contains(&0) && !subsystem.contains(&b'\n'));

    let encoded = match event.encode() {
        Ok(bytes) => bytes,
        Err(err) => panic!("an accepted kernel event does not encode: {err}: {event:?}"),
    };
    // Values lose what follows a newline, repeated keys collapse, SEQNUM loses leading
    // zeros and the header is rebuilt from the fields it had to agree with: never longer.
    assert!(
        encoded.len() <= data.len(),
        "re-encoding grew the datagram: {} > {}",
        encoded.len(),
        data.len()
    );
    let again = match Uevent::parse_kernel(&encoded) {
        Ok(again) => again,
        Err(err) => panic!("the encoding of an accepted event is refused: {err}: {event:?}"),
    };
    assert_eq!(again, event, "round trip changed the event");
    assert_eq!(
        again.encode().ok(),
        Some(encoded),
        "encoding is not canonical"
    );

    // encode_into appends.
    let mut out = b"prefix".to_vec();
    assert!(event.encode_into(&mut out).is_ok());
    assert!(out.starts_with(b"prefix"));
}

fn sysfs(devpath: &[u8], content: &[u8]) {
    let event = match Uevent::parse_sysfs(devpath, content) {
        Ok(event) => event,
        Err(err) => {
            std::hint::black_box(err.to_string());
            return;
        }
    };
    check_common(&event);
    assert_eq!(event.devpath(), devpath);
    assert_eq!(event.action(), Action::Add);
    assert_eq!(event.seqnum(), None);
    assert_eq!(event.subsystem(), None);
    assert!(event.properties().len() <= MAX_FIELDS);
    assert!(event.encode().is_err(), "a sysfs event has no kernel form");
    for (key, _) in event.properties() {
        assert!(!matches!(
            key,
            b"ACTION" | b"DEVPATH" | b"SUBSYSTEM" | b"SEQNUM"
        ));
    }

    // Every property line (last value of each key) is found by `property`.
    for (key, value) in event.properties() {
        assert_eq!(event.property(key), Some(value));
    }

    let with_subsystem = match event.clone().with_subsystem(b"pci") {
        Ok(e) => e,
        Err(err) => panic!("with_subsystem refused a valid subsystem: {err}"),
    };
    assert_eq!(with_subsystem.subsystem(), Some(&b"pci"[..]));
    assert!(with_subsystem.properties().eq(event.properties()));
    assert!(event.clone().with_subsystem(b"a\nb").is_err());

    // The same event built by hand with a subsystem and a sequence number goes through the
    // kernel form unchanged (when it fits: the builder reserves room for the typed fields).
    let mut builder = Uevent::builder(Action::Add, devpath)
        .subsystem("pci")
        .seqnum(u64::MAX);
    for (key, value) in event.properties() {
        builder = builder.property(key, value);
    }
    match builder.build() {
        Ok(built) => {
            assert!(built.properties().eq(event.properties()));
            let datagram = match built.encode() {
                Ok(d) => d,
                Err(err) => panic!("a built event with subsystem and seqnum: {err}"),
            };
            assert!(datagram.len() <= MAX_LEN);
            match Uevent::parse_kernel(&datagram) {
                Ok(parsed) => {
                    assert_eq!(parsed, built);
                    assert_eq!(parsed.seqnum(), NonZeroU64::new(u64::MAX));
                }
                Err(err) => panic!("a built event does not parse back: {err}: {built:?}"),
            }
        }
        Err(err) => {
            // Only size limits can refuse what the sysfs parser accepted.
            let msg = err.to_string();
            assert!(
                matches!(
                    err,
                    uevent::BuildError::TooManyFields | uevent::BuildError::Oversize { .. }
                ),
                "the builder refused the properties of an accepted sysfs event: {msg}: {event:?}"
            );
        }
    }
}

/// What every accepted event satisfies, and every accessor must not panic.
fn check_common(event: &Uevent) {
    let devpath = event.devpath();
    assert!(devpath.starts_with(b"/"));
    assert!(!devpath.contains(&0) && !devpath.contains(&b'\n'));
    for component in devpath[1..].split(|&b| b == b'/') {
        assert!(!component.is_empty() && component != b"." && component != b"..");
    }
    let root = Path::new("/sys");
    let sys = event.sys_path(root);
    assert!(sys.starts_with(root), "{} escapes /sys", sys.display());
    assert_eq!(
        sys.components().count(),
        root.components().count() + devpath[1..].split(|&b| b == b'/').count()
    );
    std::hint::black_box(event.devpath_os());

    let mut keys: Vec<&[u8]> = Vec::new();
    for (key, value) in event.properties() {
        assert!(!key.is_empty(), "empty key");
        assert!(!key.contains(&b'=') && !key.contains(&0), "bad key {key:?}");
        assert!(
            !value.contains(&b'\n') && !value.contains(&0),
            "bad value {value:?}"
        );
        assert!(!keys.contains(&key), "key {key:?} kept twice");
        keys.push(key);
        assert_eq!(event.property(key), Some(value));
    }
    std::hint::black_box((
        event.modalias(),
        event.devtype(),
        event.driver(),
        event.devname(),
        event.major(),
        event.minor(),
        event.devpath_old(),
        event.synth_uuid(),
        event.is_synthetic(),
        event.synth_arg(b"UUID"),
    ));
    for (name, value) in event.synth_args() {
        assert_eq!(event.property(&[b"SYNTH_ARG_", name].concat()), Some(value));
    }
    if let Some(major) = event.property(b"MAJOR")
        && let Ok(text) = std::str::from_utf8(major)
        && text.bytes().all(|b| b.is_ascii_digit())
    {
        assert_eq!(event.major(), text.parse::<u32>().ok());
    }
    std::hint::black_box(format!("{event:?}"));
    assert_eq!(event.clone(), *event);
}
