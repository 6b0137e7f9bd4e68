//! The driver rules of udev's `80-drivers.rules` that are not a `MODALIAS` lookup: modules
//! named for a device because of its subsystem and properties. systemd-udevd loads them with
//! `RUN{builtin}+="kmod load …"`; a device manager that wants the same module set needs them.
//!
//! | match                                              | loads                    |
//! |----------------------------------------------------|--------------------------|
//! | `SUBSYSTEM=tifm`, `TIFM_CARD_TYPE=SD`              | `tifm_sd`                |
//! | `SUBSYSTEM=tifm`, `TIFM_CARD_TYPE=MS`              | `tifm_ms`                |
//! | `SUBSYSTEM=memstick`                               | `ms_block`, `mspro_block`|
//! | `SUBSYSTEM=i2o`                                    | `i2o_block`              |
//! | `SUBSYSTEM=module`, kernel name `parport_pc`       | `ppdev`                  |
//! | kernel name `mtd*ro`, `MTD_FTL=smartmedia`         | `sm_ftl`                 |
//!
//! Only `add` events match (the rules file skips every other action).
//!
//! [`REPLAYED`], [`RULE_SUBSYSTEMS`] and [`RULE_NAMES`] name what a replay must trigger for
//! these rules (`docs/kmod-loader.md#driver-rules`).

use uevent::{Action, Uevent};

/// Kobjects outside `/sys/devices` whose `add` event a rule acts on, relative to the sysfs
/// mount; a replay triggers them too.
pub const REPLAYED: &[&str] = &["module/parport_pc"];

/// Subsystems of devices a rule acts on whether or not they have a `modalias`: a replay after
/// lost events must trigger them too.
pub const RULE_SUBSYSTEMS: &[&str] = &["tifm", "memstick", "i2o"];

/// Kernel names (globs) of devices a rule acts on whether or not they have a `modalias`.
pub const RULE_NAMES: &[&str] = &["mtd*ro"];

/// The modules the driver rules name for `event` (empty for most events).
pub fn rule_modules(event: &Uevent) -> &'static [&'static str] {
    if event.action() != Action::Add {
        return &[];
    }
    let kernel = event
        .devpath()
        .rsplit(|b| *b == b'/')
        .next()
        .unwrap_or_default();
    match event.subsystem() {
        Some(b"tifm") => match event.property(b"TIFM_CARD_TYPE") {
            Some(b"SD") => &["tifm_sd"],
            Some(b"MS") => &["tifm_ms"],
            _ => &[],
        },
        Some(b"memstick") => &["ms_block", "mspro_block"],
        Some(b"i2o") => &["i2o_block"],
        Some(b"module") if kernel == b"parport_pc" => &["ppdev"],
        _ if kernel.starts_with(b"mtd")
            && kernel.ends_with(b"ro")
            && event.property(b"MTD_FTL") == Some(b"smartmedia") =>
        {
            &["sm_ftl"]
        }
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: Action, devpath: &str, subsystem: &str, props: &[(&str, &str)]) -> Uevent {
        let mut b = Uevent::builder(action, devpath)
            .subsystem(subsystem)
            .seqnum(1);
        for (k, v) in props {
            b = b.property(k, v);
        }
        b.build().expect("valid event")
    }

    #[test]
    fn parport_pc_being_loaded_loads_ppdev() {
        let e = event(Action::Add, "/module/parport_pc", "module", &[]);
        assert_eq!(rule_modules(&e), ["ppdev"]);
        let other = event(Action::Add, "/module/parport", "module", &[]);
        assert!(rule_modules(&other).is_empty());
        let removed = event(Action::Remove, "/module/parport_pc", "module", &[]);
        assert!(rule_modules(&removed).is_empty());
    }

    #[test]
    fn the_replayed_subsystems_and_names_are_those_the_rules_act_on() {
        for subsystem in RULE_SUBSYSTEMS {
            let e = event(
                Action::Add,
                "/devices/x/dev0",
                subsystem,
                &[("TIFM_CARD_TYPE", "SD")],
            );
            assert!(!rule_modules(&e).is_empty(), "{subsystem}");
        }
        for name in RULE_NAMES {
            let devpath = format!("/devices/virtual/mtd/{}", name.replace('*', "0"));
            let e = event(Action::Add, &devpath, "mtd", &[("MTD_FTL", "smartmedia")]);
            assert!(!rule_modules(&e).is_empty(), "{name}");
        }
    }

    #[test]
    fn card_and_flash_rules_follow_their_properties() {
        let sd = event(
            Action::Add,
            "/devices/x/tifm0:1",
            "tifm",
            &[("TIFM_CARD_TYPE", "SD")],
        );
        assert_eq!(rule_modules(&sd), ["tifm_sd"]);
        let ms = event(
            Action::Add,
            "/devices/x/tifm0:1",
            "tifm",
            &[("TIFM_CARD_TYPE", "MS")],
        );
        assert_eq!(rule_modules(&ms), ["tifm_ms"]);
        let stick = event(Action::Add, "/devices/x/memstick0", "memstick", &[]);
        assert_eq!(rule_modules(&stick), ["ms_block", "mspro_block"]);
        let ftl = event(
            Action::Add,
            "/devices/virtual/mtd/mtd0ro",
            "mtd",
            &[("MTD_FTL", "smartmedia")],
        );
        assert_eq!(rule_modules(&ftl), ["sm_ftl"]);
        let plain = event(Action::Add, "/devices/virtual/mtd/mtd0ro", "mtd", &[]);
        assert!(rule_modules(&plain).is_empty());
    }
}
