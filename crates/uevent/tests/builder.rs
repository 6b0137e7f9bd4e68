//! Building events by hand: what the builder refuses, and what the encoder writes.

use uevent::{Action, BuildError, EncodeError, Field, MAX_FIELDS, MAX_LEN, Uevent};

fn base() -> uevent::UeventBuilder {
    Uevent::builder(Action::Add, "/devices/platform/serial8250")
        .subsystem("platform")
        .seqnum(1)
}

#[test]
fn encoder_writes_the_kernel_field_order_with_seqnum_last() {
    let event = base()
        .property("SYNTH_UUID", "0")
        .property("MODALIAS", "platform:serial8250")
        .build()
        .unwrap();
    assert_eq!(
        event.encode().unwrap(),
        b"add@/devices/platform/serial8250\0ACTION=add\0DEVPATH=/devices/platform/serial8250\0\
SUBSYSTEM=platform\0SYNTH_UUID=0\0MODALIAS=platform:serial8250\0SEQNUM=1\0"
    );
}

#[test]
fn encode_into_appends_and_leaves_the_buffer_alone_on_error() {
    let mut out = b"prefix".to_vec();
    base().build().unwrap().encode_into(&mut out).unwrap();
    assert!(out.starts_with(b"prefixadd@/devices/platform/serial8250\0"));

    let no_seqnum = Uevent::builder(Action::Add, "/devices/x")
        .subsystem("s")
        .build()
        .unwrap();
    let mut out = b"prefix".to_vec();
    assert_eq!(
        no_seqnum.encode_into(&mut out),
        Err(EncodeError::MissingField(Field::Seqnum))
    );
    assert_eq!(out, b"prefix");
    let no_subsystem = Uevent::builder(Action::Add, "/devices/x")
        .seqnum(3)
        .build()
        .unwrap();
    assert_eq!(
        no_subsystem.encode(),
        Err(EncodeError::MissingField(Field::Subsystem))
    );
}

#[test]
fn builder_refuses_devpaths_that_are_not_plain_absolute_paths() {
    for devpath in ["devices/x", "/devices/../x", "/", "/a//b", "/a\nb"] {
        let result = Uevent::builder(Action::Add, devpath).build();
        assert_eq!(result, Err(BuildError::BadDevpath), "{devpath:?}");
    }
}

#[test]
fn builder_refuses_zero_seqnum_and_bad_subsystem() {
    assert_eq!(base().seqnum(0).build(), Err(BuildError::ZeroSeqnum));
    assert_eq!(
        base().subsystem("a\0b").build(),
        Err(BuildError::BadSubsystem)
    );
    assert_eq!(
        base().subsystem("a\nb").build(),
        Err(BuildError::BadSubsystem)
    );
}

#[test]
fn builder_refuses_bad_and_reserved_keys() {
    for key in [
        "",
        "A=B",
        "A\0",
        "A\n",
        "ACTION",
        "DEVPATH",
        "SUBSYSTEM",
        "SEQNUM",
    ] {
        assert_eq!(
            base().property(key, "v").build(),
            Err(BuildError::BadKey(key.into())),
            "{key:?}"
        );
    }
}

#[test]
fn builder_refuses_values_with_nul_or_newline() {
    assert_eq!(
        base().property("K", "a\nb").build(),
        Err(BuildError::BadValue("K".into()))
    );
    assert_eq!(
        base().property("K", "a\0b").build(),
        Err(BuildError::BadValue("K".into()))
    );
}

#[test]
fn builder_refuses_more_fields_or_bytes_than_a_datagram_may_hold() {
    let mut builder = base();
    for i in 0..=(MAX_FIELDS - 4) {
        builder = builder.property(format!("K{i}"), "v");
    }
    assert_eq!(builder.build(), Err(BuildError::TooManyFields));
    let huge = "x".repeat(MAX_LEN);
    assert!(matches!(
        base().property("BIG", huge).build(),
        Err(BuildError::Oversize { .. })
    ));
}

#[test]
fn builder_keeps_the_first_position_and_last_value_of_a_repeated_key() {
    let event = base()
        .property("A", "1")
        .property("B", "2")
        .property("A", "3")
        .build()
        .unwrap();
    let props: Vec<(&[u8], &[u8])> = event.properties().collect();
    assert_eq!(props, [(&b"A"[..], &b"3"[..]), (b"B", b"2")]);
}

#[test]
fn events_are_equal_by_content_not_by_how_they_were_made() {
    let parsed = Uevent::parse_kernel(
        b"add@/devices/x\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=s\0A=0\0B=2\0A=1\0SEQNUM=5\0",
    )
    .unwrap();
    let built = Uevent::builder(Action::Add, "/devices/x")
        .subsystem("s")
        .seqnum(5)
        .property("A", "1")
        .property("B", "2")
        .build()
        .unwrap();
    assert_eq!(parsed, built);
    assert_ne!(parsed, base().build().unwrap());
}
