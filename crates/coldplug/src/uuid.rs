//! UUIDs that tag our synthetic events (`SYNTH_UUID`), one per write.

use std::path::Path;

/// Hands out UUIDs that share a random prefix drawn once and end in a counter: unique within
/// this source, unpredictable across runs, and cheap (no syscall per device). The kernel only
/// checks the UUID's shape.
#[derive(Debug, Clone)]
pub struct UuidSource {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-`: the first 24 characters of a random UUID.
    prefix: String,
    next: u64,
}

impl UuidSource {
    /// A source whose prefix comes from the kernel's random UUID file (normally
    /// `/proc/sys/kernel/random/uuid`), or, if that cannot be read, from the clock and pid.
    pub fn new(random_uuid: &Path) -> UuidSource {
        let prefix = std::fs::read_to_string(random_uuid)
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| is_uuid(s))
            .map(|s| s[..24].to_owned())
            .unwrap_or_else(fallback_prefix);
        UuidSource { prefix, next: 1 }
    }

    /// The next UUID.
    pub fn next_uuid(&mut self) -> String {
        let uuid = format!("{}{:012x}", self.prefix, self.next & 0xffff_ffff_ffff);
        self.next += 1;
        uuid
    }
}

fn fallback_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mix = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-",
        (mix >> 32) as u32,
        (mix >> 16) as u16,
        (mix >> 4) as u16 & 0xfff,
        mix as u16 & 0xfff
    )
}

/// Whether `s` has a UUID's shape: 36 characters, dashes at 8, 13, 18, 23, hex elsewhere.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed_and_distinct() {
        for path in ["/proc/sys/kernel/random/uuid", "/nonexistent/uuid"] {
            let mut source = UuidSource::new(Path::new(path));
            let a = source.next_uuid();
            let b = source.next_uuid();
            assert!(is_uuid(&a), "{a}");
            assert!(is_uuid(&b), "{b}");
            assert_ne!(a, b);
            assert_eq!(a[..24], b[..24]);
        }
    }

    #[test]
    fn shape_check_refuses_near_misses() {
        assert!(is_uuid("6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5b"));
        assert!(!is_uuid("6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5"));
        assert!(!is_uuid("6b0c3e1e_5d2a-4f5e-9a1b-0d3c2e1f4a5b"));
        assert!(!is_uuid("6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5g"));
    }
}
