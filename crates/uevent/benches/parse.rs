//! Parsing throughput: a typical 300-byte `add` datagram of a USB interface.
//!
//! Run with `cargo bench -p uevent`; divan prints the time per parse and datagrams per second.

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use uevent::Uevent;

fn main() {
    divan::main();
}

/// A USB keyboard interface as the kernel announces it (10 fields, 300 bytes).
const USB_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-10/1-10:1.0\0\
ACTION=add\0\
DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-10/1-10:1.0\0\
SUBSYSTEM=usb\0\
DEVTYPE=usb_interface\0\
PRODUCT=46d/c52b/1211\0\
TYPE=0/0/0\0\
INTERFACE=3/1/1\0\
MODALIAS=usb:v046DpC52Bd1211dc00dsc00dp00ic03isc01ip01in00\0\
DRIVER=usbhid\0\
SEQNUM=4242424\0";

#[divan::bench]
fn parse_kernel_usb_add_300_bytes(bencher: Bencher) {
    assert_eq!(USB_ADD.len(), 300);
    assert!(Uevent::parse_kernel(USB_ADD).is_ok());
    bencher
        .counter(ItemsCount::new(1usize))
        .counter(BytesCount::of_slice(USB_ADD))
        .bench(|| Uevent::parse_kernel(divan::black_box(USB_ADD)));
}

#[divan::bench]
fn parse_sysfs_pci_device(bencher: Bencher) {
    const CONTENT: &[u8] = b"DRIVER=virtio-pci\nPCI_CLASS=FFFF00\nPCI_ID=1AF4:1044\n\
PCI_SUBSYS_ID=1AF4:1044\nPCI_SLOT_NAME=0000:00:05.0\n\
MODALIAS=pci:v00001AF4d00001044sv00001AF4sd00001044bcFFscFFi00\n";
    bencher.counter(ItemsCount::new(1usize)).bench(|| {
        Uevent::parse_sysfs(
            b"/devices/pci0000:00/0000:00:05.0",
            divan::black_box(CONTENT),
        )
    });
}
