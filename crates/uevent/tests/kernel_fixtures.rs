//! Parsing datagrams captured from a running kernel (`fixtures/capture.py`, Linux 6.18) and
//! `uevent` files copied from its sysfs.

use uevent::{Action, Uevent};

fn parse(datagram: &[u8]) -> Uevent {
    match Uevent::parse_kernel(datagram) {
        Ok(event) => event,
        Err(err) => panic!("real kernel datagram refused: {err}"),
    }
}

#[test]
fn coldplug_add_with_modalias_and_unnamed_synth_uuid() {
    let event = parse(include_bytes!("fixtures/00-add.bin"));
    assert_eq!(event.action(), Action::Add);
    assert_eq!(event.devpath(), b"/devices/platform/serial8250");
    assert_eq!(event.subsystem(), Some(&b"platform"[..]));
    assert_eq!(event.seqnum().map(|s| s.get()), Some(822));
    assert_eq!(event.modalias(), Some(&b"platform:serial8250"[..]));
    assert_eq!(event.driver(), Some(&b"serial8250"[..]));
    assert!(event.is_synthetic());
    assert_eq!(event.synth_uuid(), Some(&b"0"[..]));
    assert_eq!(event.synth_args().count(), 0);
    let keys: Vec<&[u8]> = event.properties().map(|(k, _)| k).collect();
    assert_eq!(keys, [&b"SYNTH_UUID"[..], b"DRIVER", b"MODALIAS"]);
    assert_eq!(
        event.sys_path(std::path::Path::new("/sys")),
        std::path::Path::new("/sys/devices/platform/serial8250")
    );
}

#[test]
fn synthetic_add_carries_its_uuid_and_synth_args() {
    let event = parse(include_bytes!("fixtures/01-add.bin"));
    assert_eq!(event.action(), Action::Add);
    assert!(event.is_synthetic());
    assert_eq!(
        event.synth_uuid(),
        Some(&b"6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5b"[..])
    );
    let args: Vec<(&[u8], &[u8])> = event.synth_args().collect();
    assert_eq!(args, [(&b"DEVMGR"[..], &b"fixture"[..]), (b"SEQ", b"1")]);
    assert_eq!(event.synth_arg(b"SEQ"), Some(&b"1"[..]));
    assert_eq!(event.synth_arg(b"NOPE"), None);
    assert_eq!(event.property(b"SYNTH_ARG_DEVMGR"), Some(&b"fixture"[..]));
}

#[test]
fn driver_unbind_is_real_and_has_no_modalias() {
    let event = parse(include_bytes!("fixtures/02-unbind.bin"));
    assert_eq!(event.action(), Action::Unbind);
    assert_eq!(event.devpath(), b"/devices/pci0000:00/0000:00:05.0/virtio4");
    assert_eq!(event.subsystem(), Some(&b"virtio"[..]));
    assert!(!event.is_synthetic());
    assert_eq!(event.modalias(), None);
    assert_eq!(event.properties().len(), 0);
}

#[test]
fn driver_bind_names_the_driver_and_modalias() {
    let event = parse(include_bytes!("fixtures/03-bind.bin"));
    assert_eq!(event.action(), Action::Bind);
    assert!(!event.is_synthetic());
    assert_eq!(event.driver(), Some(&b"virtio_rng"[..]));
    assert_eq!(event.modalias(), Some(&b"virtio:d00000004v00001AF4"[..]));
    assert_eq!(event.seqnum().map(|s| s.get()), Some(825));
}

#[test]
fn interface_rename_is_a_move_with_devpath_old() {
    let event = parse(include_bytes!("fixtures/04-move.bin"));
    assert_eq!(event.action(), Action::Move);
    assert_eq!(event.devpath(), b"/devices/virtual/net/devmgrmv0");
    assert_eq!(event.devpath_old(), Some(&b"/devices/virtual/net/ifb0"[..]));
    assert_eq!(event.property(b"INTERFACE"), Some(&b"devmgrmv0"[..]));
    assert_eq!(event.property(b"IFINDEX"), Some(&b"2"[..]));

    let back = parse(include_bytes!("fixtures/05-move.bin"));
    assert_eq!(back.devpath(), event.devpath_old().unwrap_or_default());
    assert_eq!(back.devpath_old(), Some(event.devpath()));
    assert!(back.seqnum() > event.seqnum());
}

#[test]
fn change_on_a_char_device_has_major_minor_and_devname() {
    let event = parse(include_bytes!("fixtures/06-change.bin"));
    assert_eq!(event.action(), Action::Change);
    assert_eq!(event.subsystem(), Some(&b"mem"[..]));
    assert_eq!((event.major(), event.minor()), (Some(1), Some(3)));
    assert_eq!(event.devname(), Some(&b"null"[..]));
    assert_eq!(event.property(b"DEVMODE"), Some(&b"0666"[..]));
    assert_eq!(event.devtype(), None);
}

#[test]
fn every_captured_datagram_reencodes_byte_for_byte() {
    for datagram in [
        &include_bytes!("fixtures/00-add.bin")[..],
        include_bytes!("fixtures/01-add.bin"),
        include_bytes!("fixtures/02-unbind.bin"),
        include_bytes!("fixtures/03-bind.bin"),
        include_bytes!("fixtures/04-move.bin"),
        include_bytes!("fixtures/05-move.bin"),
        include_bytes!("fixtures/06-change.bin"),
    ] {
        let encoded = parse(datagram).encode();
        assert_eq!(encoded.as_deref(), Ok(datagram));
    }
}

#[test]
fn sysfs_uevent_of_a_pci_device_reads_in_file_order() {
    let event = Uevent::parse_sysfs(
        b"/devices/pci0000:00/0000:00:05.0",
        include_bytes!("fixtures/sysfs/pci-0000-00-05.0.uevent"),
    )
    .unwrap();
    assert_eq!(event.action(), Action::Add);
    assert_eq!((event.subsystem(), event.seqnum()), (None, None));
    assert_eq!(event.driver(), Some(&b"virtio-pci"[..]));
    assert_eq!(
        event.modalias(),
        Some(&b"pci:v00001AF4d00001044sv00001AF4sd00001044bcFFscFFi00"[..])
    );
    let keys: Vec<&[u8]> = event.properties().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            &b"DRIVER"[..],
            b"PCI_CLASS",
            b"PCI_ID",
            b"PCI_SUBSYS_ID",
            b"PCI_SLOT_NAME",
            b"MODALIAS"
        ]
    );
    assert!(!event.is_synthetic());
}

#[test]
fn sysfs_uevent_of_a_char_device_gives_its_numbers() {
    let event = Uevent::parse_sysfs(
        b"/devices/virtual/mem/null",
        include_bytes!("fixtures/sysfs/mem-null.uevent"),
    )
    .unwrap();
    assert_eq!((event.major(), event.minor()), (Some(1), Some(3)));
    assert_eq!(event.devname(), Some(&b"null"[..]));
}

#[test]
fn sysfs_uevent_with_a_long_cpu_modalias_is_kept_whole() {
    let content = include_bytes!("fixtures/sysfs/cpu0.uevent");
    let event = Uevent::parse_sysfs(b"/devices/system/cpu/cpu0", content).unwrap();
    let modalias = event.modalias().unwrap();
    assert!(modalias.starts_with(b"cpu:type:x86,ven"));
    // The kernel ends the CPU modalias with its own newline, so the file ends in "\n\n": the
    // empty last line is skipped and the value is everything up to the first newline.
    assert!(content.ends_with(b"\n\n"));
    assert_eq!("MODALIAS=".len() + modalias.len() + 2, content.len());
    assert_eq!(event.properties().len(), 1);
}

#[test]
fn sysfs_event_with_subsystem_encodes_once_given_a_seqnum() {
    let event = Uevent::parse_sysfs(
        b"/devices/pci0000:00/0000:00:05.0/virtio4",
        include_bytes!("fixtures/sysfs/virtio4.uevent"),
    )
    .unwrap();
    assert!(
        event.encode().is_err(),
        "no subsystem nor seqnum: no kernel form"
    );
    let event = event.with_subsystem(b"virtio").unwrap();
    assert_eq!(event.subsystem(), Some(&b"virtio"[..]));
    assert_eq!(
        event.encode(),
        Err(uevent::EncodeError::MissingField(uevent::Field::Seqnum))
    );
    // The bind datagram of the same device carries the same properties.
    let bind = parse(include_bytes!("fixtures/03-bind.bin"));
    assert!(event.properties().eq(bind.properties()));
}
