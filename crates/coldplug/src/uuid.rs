//! UUIDs that tag our synthetic events (`SYNTH_UUID`), one per write.

use std::path::Path;

/// Hands out UUIDs that share a random prefix drawn once and end in a counter: unique within
/// this source, unpredictable across runs, and cheap (no syscall per device). The kernel only
/// checks the UUID's shape.
#[derive(Debug, Clone)]
pub struct UuidSource {
    /// The first 24 characters of a random UUID (`xxxxxxxx-xxxx-xxxx-xxxx-`), as the top 80
    /// bits of a [`Tag`].
    prefix: u128,
    next: u64,
}

impl UuidSource {
    /// A source whose prefix comes from the kernel's random UUID file (normally
    /// `/proc/sys/kernel/random/uuid`), or, if that cannot be read, from the clock and pid.
    pub fn new(random_uuid: &Path) -> UuidSource {
        let prefix = std::fs::read_to_string(random_uuid)
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .and_then(|s| Tag::parse(s.as_bytes()))
            .unwrap_or_else(fallback_prefix);
        UuidSource {
            prefix: prefix.0 & !COUNTER,
            next: 1,
        }
    }

    /// The next UUID.
    pub fn next_uuid(&mut self) -> String {
        self.next_tag().to_string()
    }

    /// The next UUID, as a [`Tag`].
    pub(crate) fn next_tag(&mut self) -> Tag {
        let tag = Tag(self.prefix | (u128::from(self.next) & COUNTER));
        self.next += 1;
        tag
    }
}

/// The counter's bits in a [`UuidSource`]'s UUIDs: the last 12 hex digits.
const COUNTER: u128 = 0xffff_ffff_ffff;

/// A UUID in lower case (what a [`UuidSource`] hands out) as its 128 bits: 16 bytes and no
/// allocation where its text takes a 36-byte string, for the UUIDs a pass waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Tag(u128);

impl Tag {
    /// The tag of `text`, if it is a UUID in lower case: two texts have the same tag exactly
    /// when they are equal.
    pub(crate) fn parse(text: &[u8]) -> Option<Tag> {
        if text.len() != 36 {
            return None;
        }
        let mut bits = 0u128;
        for (i, &b) in text.iter().enumerate() {
            let digit = match (i, b) {
                (8 | 13 | 18 | 23, b'-') => continue,
                (8 | 13 | 18 | 23, _) => return None,
                (_, b'0'..=b'9') => b - b'0',
                (_, b'a'..=b'f') => b - b'a' + 10,
                _ => return None,
            };
            bits = bits << 4 | u128::from(digit);
        }
        Some(Tag(bits))
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            b >> 96,
            (b >> 80) & 0xffff,
            (b >> 64) & 0xffff,
            (b >> 48) & 0xffff,
            b & COUNTER
        )
    }
}

fn fallback_prefix() -> Tag {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mix = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    // xxxxxxxx-xxxx-4xxx-8xxx-: version 4, variant 1, as before.
    let (a, b, c, d) = (
        u128::from((mix >> 32) as u32),
        u128::from((mix >> 16) as u16),
        u128::from(0x4000 | ((mix >> 4) as u16 & 0xfff)),
        u128::from(0x8000 | (mix as u16 & 0xfff)),
    );
    Tag(a << 96 | b << 80 | c << 64 | d << 48)
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
    fn a_tag_is_its_uuid_in_lower_case_and_nothing_else() {
        let uuid = "6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5b";
        let tag = Tag::parse(uuid.as_bytes()).unwrap();
        assert_eq!(tag.to_string(), uuid);
        assert_eq!(
            Tag::parse(b"00000000-0000-0000-0000-000000000001")
                .unwrap()
                .0,
            1
        );
        for near_miss in [
            "6B0C3E1E-5D2A-4F5E-9A1B-0D3C2E1F4A5B",
            "6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5",
            "6b0c3e1e_5d2a-4f5e-9a1b-0d3c2e1f4a5b",
            "6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5g",
            "6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5b ",
        ] {
            assert_eq!(Tag::parse(near_miss.as_bytes()), None, "{near_miss}");
        }
        let mut source = UuidSource::new(Path::new("/nonexistent/uuid"));
        let (a, b) = (source.next_tag(), source.next_uuid());
        assert_eq!(Tag::parse(b.as_bytes()).map(|t| t.0), Some(a.0 + 1));
    }

    #[test]
    fn the_counter_follows_the_prefix_read_from_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("uuid");
        std::fs::write(&path, "6B0C3E1E-5D2A-4F5E-9A1B-0D3C2E1F4A5B\n").unwrap();
        let mut source = UuidSource::new(&path);
        assert_eq!(source.next_uuid(), "6b0c3e1e-5d2a-4f5e-9a1b-000000000001");
        assert_eq!(source.next_uuid(), "6b0c3e1e-5d2a-4f5e-9a1b-000000000002");
    }

    #[test]
    fn shape_check_refuses_near_misses() {
        assert!(is_uuid("6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5b"));
        assert!(!is_uuid("6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5"));
        assert!(!is_uuid("6b0c3e1e_5d2a-4f5e-9a1b-0d3c2e1f4a5b"));
        assert!(!is_uuid("6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5g"));
    }
}
