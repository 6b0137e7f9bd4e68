//! Every reason a datagram or sysfs file is refused, one test each, plus the edges that are
//! still accepted (`docs/uevents.md#parsing-a-kernel-datagram`).

use uevent::{Field, MAX_FIELDS, MAX_LEN, ParseError, RejectReason, SysfsError, Uevent};

const HEADER: &[u8] = b"add@/devices/platform/serial8250";

/// `header\0field\0field\0...`
fn datagram(header: &[u8], fields: &[&[u8]]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.push(0);
    for field in fields {
        out.extend_from_slice(field);
        out.push(0);
    }
    out
}

/// A valid datagram's fields, with `extra` inserted before `SEQNUM`.
fn fields_with<'a>(extra: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut fields: Vec<&[u8]> = vec![
        b"ACTION=add",
        b"DEVPATH=/devices/platform/serial8250",
        b"SUBSYSTEM=platform",
    ];
    fields.extend_from_slice(extra);
    fields.push(b"SEQNUM=42");
    fields
}

fn refused(bytes: &[u8]) -> ParseError {
    match Uevent::parse_kernel(bytes) {
        Ok(event) => panic!("accepted: {event:?}"),
        Err(err) => err,
    }
}

#[test]
fn the_valid_base_datagram_is_accepted() {
    let event = Uevent::parse_kernel(&datagram(HEADER, &fields_with(&[]))).unwrap();
    assert_eq!(event.seqnum().map(|s| s.get()), Some(42));
}

#[test]
fn empty_datagram_is_refused() {
    assert_eq!(refused(b""), ParseError::Empty);
}

#[test]
fn datagram_without_any_nul_is_refused_as_unterminated() {
    let err = refused(b"add@/devices/platform/serial8250");
    assert_eq!(err, ParseError::Unterminated { offset: 0 });
    assert_eq!(err.reason(), RejectReason::Unterminated);
}

#[test]
fn last_field_without_nul_terminator_is_refused() {
    let mut bytes = datagram(HEADER, &fields_with(&[]));
    bytes.pop();
    let offset = bytes.len() - "SEQNUM=42".len();
    assert_eq!(refused(&bytes), ParseError::Unterminated { offset });
}

#[test]
fn field_without_equals_is_refused_whole() {
    let bytes = datagram(HEADER, &fields_with(&[b"MODALIAS=platform:x", b"NOEQUALS"]));
    let offset = HEADER.len()
        + 1
        + bytes[HEADER.len() + 1..]
            .windows(8)
            .position(|w| w == b"NOEQUALS")
            .unwrap();
    let err = refused(&bytes);
    assert_eq!(err, ParseError::MissingEquals { offset });
    assert_eq!(err.reason(), RejectReason::MissingEquals);
}

#[test]
fn empty_field_between_two_nuls_is_refused() {
    let err = refused(&datagram(HEADER, &fields_with(&[b""])));
    assert!(matches!(err, ParseError::MissingEquals { .. }), "{err:?}");
}

#[test]
fn field_with_empty_key_is_refused() {
    let err = refused(&datagram(HEADER, &fields_with(&[b"=value"])));
    assert!(matches!(err, ParseError::EmptyKey { .. }), "{err:?}");
    assert_eq!(err.reason(), RejectReason::EmptyKey);
}

#[test]
fn header_without_at_slash_is_refused() {
    for header in [&b"add"[..], b"add@devices", b"add /devices", b""] {
        assert_eq!(
            refused(&datagram(header, &fields_with(&[]))),
            ParseError::BadHeader,
            "{header:?}"
        );
    }
}

#[test]
fn header_followed_by_nothing_is_refused() {
    assert_eq!(refused(&datagram(HEADER, &[])), ParseError::HeaderOnly);
}

#[test]
fn header_action_differing_from_action_field_is_refused() {
    let bytes = datagram(b"remove@/devices/platform/serial8250", &fields_with(&[]));
    let err = refused(&bytes);
    assert_eq!(err, ParseError::HeaderMismatch(Field::Action));
    assert_eq!(err.reason(), RejectReason::HeaderMismatch);
}

#[test]
fn header_devpath_differing_from_devpath_field_is_refused() {
    let bytes = datagram(b"add@/devices/platform/other", &fields_with(&[]));
    assert_eq!(refused(&bytes), ParseError::HeaderMismatch(Field::Devpath));
}

#[test]
fn unknown_action_is_refused_and_named() {
    let bytes = datagram(
        b"explode@/devices/platform/serial8250",
        &[
            b"ACTION=explode",
            b"DEVPATH=/devices/platform/serial8250",
            b"SUBSYSTEM=platform",
            b"SEQNUM=1",
        ],
    );
    let err = refused(&bytes);
    assert_eq!(err, ParseError::UnknownAction("explode".into()));
    assert_eq!(err.reason(), RejectReason::UnknownAction);
    assert!(err.to_string().contains("explode"));
}

#[test]
fn missing_seqnum_is_refused() {
    let bytes = datagram(
        HEADER,
        &[
            b"ACTION=add",
            b"DEVPATH=/devices/platform/serial8250",
            b"SUBSYSTEM=platform",
        ],
    );
    let err = refused(&bytes);
    assert_eq!(err, ParseError::MissingField(Field::Seqnum));
    assert_eq!(err.reason(), RejectReason::MissingField);
}

#[test]
fn zero_seqnum_is_refused() {
    let mut fields = fields_with(&[]);
    fields.pop();
    fields.push(b"SEQNUM=0");
    let err = refused(&datagram(HEADER, &fields));
    assert_eq!(err, ParseError::ZeroSeqnum);
    assert_eq!(err.reason(), RejectReason::ZeroSeqnum);
}

#[test]
fn non_decimal_or_overflowing_seqnum_is_refused() {
    for seqnum in [
        &b"SEQNUM=abc"[..],
        b"SEQNUM=",
        b"SEQNUM=-1",
        b"SEQNUM=99999999999999999999",
    ] {
        let mut fields = fields_with(&[]);
        fields.pop();
        fields.push(seqnum);
        assert_eq!(
            refused(&datagram(HEADER, &fields)),
            ParseError::InvalidSeqnum
        );
    }
}

#[test]
fn missing_action_devpath_or_subsystem_is_refused_and_named() {
    for (missing, field) in [
        (&b"ACTION=add"[..], Field::Action),
        (b"DEVPATH=/devices/platform/serial8250", Field::Devpath),
        (b"SUBSYSTEM=platform", Field::Subsystem),
    ] {
        let fields: Vec<&[u8]> = fields_with(&[])
            .into_iter()
            .filter(|f| *f != missing)
            .collect();
        assert_eq!(
            refused(&datagram(HEADER, &fields)),
            ParseError::MissingField(field)
        );
    }
}

#[test]
fn devpath_that_climbs_out_of_sysfs_is_refused() {
    let bytes = datagram(
        b"add@/devices/../../etc",
        &[
            b"ACTION=add",
            b"DEVPATH=/devices/../../etc",
            b"SUBSYSTEM=x",
            b"SEQNUM=1",
        ],
    );
    let err = refused(&bytes);
    assert_eq!(err, ParseError::BadDevpath);
    assert_eq!(err.reason(), RejectReason::BadDevpath);
}

/// udevd's rebroadcast header: "libudev\0", magic 0xfeedcafe, header size, offsets...
#[test]
fn libudev_frame_is_refused() {
    let mut frame = b"libudev\0".to_vec();
    frame.extend_from_slice(&0xfeed_cafe_u32.to_be_bytes());
    frame.extend_from_slice(&40u32.to_be_bytes());
    frame.extend_from_slice(&40u32.to_be_bytes());
    frame.extend_from_slice(&30u32.to_be_bytes());
    frame.extend_from_slice(&[0; 16]);
    frame.extend_from_slice(b"ACTION=add\0DEVPATH=/devices/x\0SEQNUM=1\0");
    let err = refused(&frame);
    assert_eq!(err, ParseError::LibudevFrame);
    assert_eq!(err.reason(), RejectReason::LibudevFrame);
}

#[test]
fn more_than_64_fields_are_refused_and_64_are_accepted() {
    let names: Vec<String> = (0..MAX_FIELDS).map(|i| format!("K{i}=v")).collect();
    let extra: Vec<&[u8]> = names.iter().map(|s| s.as_bytes()).collect();
    // The four typed fields plus 60 others: 64, the limit.
    let at_limit = datagram(HEADER, &fields_with(&extra[..MAX_FIELDS - 4]));
    let event = Uevent::parse_kernel(&at_limit).unwrap();
    assert_eq!(event.properties().len(), MAX_FIELDS - 4);
    let over = datagram(HEADER, &fields_with(&extra[..MAX_FIELDS - 3]));
    let err = refused(&over);
    assert_eq!(err, ParseError::TooManyFields);
    assert_eq!(err.reason(), RejectReason::TooManyFields);
}

#[test]
fn datagram_over_8_kib_is_refused_and_8_kib_is_accepted() {
    let base = datagram(HEADER, &fields_with(&[b"BIG="]));
    let fill = MAX_LEN - base.len();
    let big = format!("BIG={}", "x".repeat(fill));
    let at_limit = datagram(HEADER, &fields_with(&[big.as_bytes()]));
    assert_eq!(at_limit.len(), MAX_LEN);
    let event = Uevent::parse_kernel(&at_limit).unwrap();
    assert_eq!(event.property(b"BIG").map(<[u8]>::len), Some(fill));

    let bigger = format!("BIG={}", "x".repeat(fill + 1));
    let over = datagram(HEADER, &fields_with(&[bigger.as_bytes()]));
    let err = refused(&over);
    assert_eq!(err, ParseError::Oversize { len: MAX_LEN + 1 });
    assert_eq!(err.reason(), RejectReason::Oversize);
}

#[test]
fn values_are_cut_at_the_first_newline() {
    let bytes = datagram(
        HEADER,
        &fields_with(&[b"MODALIAS=platform:serial8250\ntrailing"]),
    );
    let event = Uevent::parse_kernel(&bytes).unwrap();
    assert_eq!(event.modalias(), Some(&b"platform:serial8250"[..]));
}

#[test]
fn last_duplicate_wins_and_keeps_the_first_position() {
    let bytes = datagram(HEADER, &fields_with(&[b"A=1", b"B=2", b"A=3"]));
    let event = Uevent::parse_kernel(&bytes).unwrap();
    let props: Vec<(&[u8], &[u8])> = event.properties().collect();
    assert_eq!(props, [(&b"A"[..], &b"3"[..]), (b"B", b"2")]);
}

#[test]
fn duplicate_typed_fields_take_the_last_value_too() {
    let bytes = datagram(
        HEADER,
        &[
            b"ACTION=add",
            b"DEVPATH=/devices/platform/serial8250",
            b"SUBSYSTEM=first",
            b"SUBSYSTEM=platform",
            b"SEQNUM=1",
            b"SEQNUM=7",
        ],
    );
    let event = Uevent::parse_kernel(&bytes).unwrap();
    assert_eq!(event.subsystem(), Some(&b"platform"[..]));
    assert_eq!(event.seqnum().map(|s| s.get()), Some(7));
}

#[test]
fn values_need_not_be_utf8_and_are_split_on_the_first_equals() {
    let bytes = datagram(HEADER, &fields_with(&[b"NAME=\xff\xfe=x", b"EMPTY="]));
    let event = Uevent::parse_kernel(&bytes).unwrap();
    assert_eq!(event.property(b"NAME"), Some(&b"\xff\xfe=x"[..]));
    assert_eq!(event.property(b"EMPTY"), Some(&b""[..]));
}

#[test]
fn every_parse_error_maps_to_its_own_reason() {
    let mut seen: Vec<RejectReason> = [
        ParseError::Empty,
        ParseError::Oversize { len: 0 },
        ParseError::LibudevFrame,
        ParseError::BadHeader,
        ParseError::HeaderOnly,
        ParseError::Unterminated { offset: 0 },
        ParseError::MissingEquals { offset: 0 },
        ParseError::EmptyKey { offset: 0 },
        ParseError::TooManyFields,
        ParseError::MissingField(Field::Action),
        ParseError::UnknownAction(String::new()),
        ParseError::HeaderMismatch(Field::Action),
        ParseError::BadDevpath,
        ParseError::InvalidSeqnum,
        ParseError::ZeroSeqnum,
    ]
    .iter()
    .map(ParseError::reason)
    .collect();
    seen.sort_unstable();
    assert_eq!(seen, RejectReason::ALL);
}

fn sysfs_refused(devpath: &[u8], content: &[u8]) -> SysfsError {
    match Uevent::parse_sysfs(devpath, content) {
        Ok(event) => panic!("accepted: {event:?}"),
        Err(err) => err,
    }
}

#[test]
fn sysfs_line_without_equals_is_refused_with_its_line_number() {
    let err = sysfs_refused(b"/devices/x", b"A=1\nB=2\nbroken\n");
    assert_eq!(err, SysfsError::MissingEquals { line: 3 });
    assert!(err.to_string().contains("line 3"));
}

#[test]
fn sysfs_line_with_nul_or_empty_key_is_refused() {
    assert_eq!(
        sysfs_refused(b"/devices/x", b"A=1\0\n"),
        SysfsError::Nul { line: 1 }
    );
    assert_eq!(
        sysfs_refused(b"/devices/x", b"A=1\n=2\n"),
        SysfsError::EmptyKey { line: 2 }
    );
}

#[test]
fn sysfs_file_setting_a_typed_field_is_refused() {
    assert_eq!(
        sysfs_refused(b"/devices/x", b"SUBSYSTEM=pci\n"),
        SysfsError::ReservedKey {
            line: 1,
            field: Field::Subsystem
        }
    );
}

#[test]
fn sysfs_file_too_large_or_with_too_many_lines_is_refused() {
    let huge = vec![b'x'; MAX_LEN + 1];
    assert_eq!(
        sysfs_refused(b"/devices/x", &huge),
        SysfsError::Oversize { len: MAX_LEN + 1 }
    );
    let many: String = (0..=MAX_FIELDS).map(|i| format!("K{i}=v\n")).collect();
    assert_eq!(
        sysfs_refused(b"/devices/x", many.as_bytes()),
        SysfsError::TooManyFields
    );
}

#[test]
fn sysfs_bad_devpath_is_refused() {
    for devpath in [&b"devices/x"[..], b"/devices/../x", b"", b"/devices//x"] {
        assert_eq!(
            sysfs_refused(devpath, b"A=1\n"),
            SysfsError::BadDevpath,
            "{devpath:?}"
        );
    }
}

#[test]
fn empty_sysfs_file_is_a_device_without_properties() {
    let event = Uevent::parse_sysfs(b"/devices/system/memory/memory0", b"").unwrap();
    assert_eq!(event.properties().len(), 0);
    assert_eq!(event.devpath(), b"/devices/system/memory/memory0");
}
