//! Compressed modules: detection by magic bytes (never by file name) and in-process
//! decompression, for when the kernel cannot decompress the format itself
//! (`docs/kmod-loader.md#loading-a-module`).

use std::io::{self, Read};
use std::path::Path;

/// How a module file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain ELF object.
    None,
    /// xz (`FD 37 7A 58 5A 00`).
    Xz,
    /// zstd (`28 B5 2F FD`).
    Zstd,
    /// gzip (`1F 8B`).
    Gzip,
}

/// The largest decompressed module accepted (the biggest Debian module is about 20 MiB; this
/// bounds what a corrupt or hostile file can make us allocate).
pub const MAX_MODULE_SIZE: u64 = 256 << 20;

impl Compression {
    /// The format of a file starting with `head`.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Compression::Zstd
        } else if head.starts_with(&[0x1F, 0x8B]) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The name `/sys/module/compression` uses for it.
    pub fn kernel_name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Xz => Some("xz"),
            Compression::Zstd => Some("zstd"),
            Compression::Gzip => Some("gzip"),
        }
    }

    /// Which format the running kernel decompresses itself, from `/sys/module/compression`
    /// (present when the kernel has `CONFIG_MODULE_DECOMPRESS`); `None` when absent or unknown.
    pub fn supported_by_kernel(sys_module_compression: &Path) -> Option<Compression> {
        let name = std::fs::read_to_string(sys_module_compression).ok()?;
        [Compression::Xz, Compression::Zstd, Compression::Gzip]
            .into_iter()
            .find(|c| c.kernel_name() == Some(name.trim()))
    }

    /// Decompresses `data` (in this format) into memory, refusing more than
    /// [`MAX_MODULE_SIZE`] bytes of output.
    pub fn decompress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Compression::None => out.extend_from_slice(data),
            Compression::Xz => {
                let mut input = io::BufReader::new(data);
                let mut sink = Bounded::new(&mut out);
                lzma_rs::xz_decompress(&mut input, &mut sink)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))?;
            }
            Compression::Zstd => {
                let decoder = ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                })?;
                read_bounded(decoder, &mut out)?;
            }
            Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), &mut out)?,
        }
        Ok(out)
    }
}

fn read_bounded(reader: impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    let read = reader.take(MAX_MODULE_SIZE + 1).read_to_end(out)?;
    if read as u64 > MAX_MODULE_SIZE {
        return Err(too_big());
    }
    Ok(())
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("decompressed module larger than {MAX_MODULE_SIZE} bytes"),
    )
}

/// A writer that refuses to grow past [`MAX_MODULE_SIZE`].
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Bounded<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Bounded { out }
    }
}

impl io::Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.out.len() + buf.len()) as u64 > MAX_MODULE_SIZE {
            return Err(too_big());
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_magic_not_by_name() {
        assert_eq!(Compression::detect(b"\x7fELF\x02\x01"), Compression::None);
        assert_eq!(
            Compression::detect(&[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1]),
            Compression::Xz
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xB5, 0x2F, 0xFD, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(&[0x1F, 0x8B, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0xFD, 0x37]),
            Compression::None,
            "truncated magic"
        );
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn gzip_round_trips_and_garbage_is_an_error_not_a_panic() {
        use std::io::Write;
        let payload = b"\x7fELF module body".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&payload).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Compression::detect(&gz), Compression::Gzip);
        assert_eq!(Compression::Gzip.decompress(&gz).unwrap(), payload);
        for kind in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let mut garbage = [0u8; 64];
            garbage[..2].copy_from_slice(&[0x1F, 0x8B]);
            assert!(kind.decompress(&garbage[..]).is_err(), "{kind:?}");
            assert!(kind.decompress(&[]).is_err(), "{kind:?} on empty input");
        }
    }

    #[test]
    fn kernel_support_is_read_from_sys_module_compression() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("compression");
        assert_eq!(
            Compression::supported_by_kernel(&file),
            None,
            "absent: none"
        );
        for (text, expected) in [
            ("xz\n", Some(Compression::Xz)),
            ("zstd\n", Some(Compression::Zstd)),
            ("gzip", Some(Compression::Gzip)),
            ("lz4\n", None),
        ] {
            std::fs::write(&file, text).unwrap();
            assert_eq!(
                Compression::supported_by_kernel(&file),
                expected,
                "{text:?}"
            );
        }
    }
}
