//! Name normalisation as libkmod does it: `-` becomes `_` (outside brackets for aliases), and a
//! module name is a file name cut at its first `.` (`docs/kmod-loader.md#names-and-normalisation`).

use crate::error::AliasError;

/// libkmod's limit for an alias (`PATH_MAX - 1`).
pub const MAX_ALIAS_LEN: usize = 4095;

/// Normalises an alias or alias pattern like libkmod's `alias_normalize`: every `-` outside a
/// `[...]` bracket becomes `_`; the bytes of a bracket are kept verbatim up to its first `]`.
/// A `[` without a closing `]`, or a `]` outside a bracket, is rejected.
///
/// ```
/// use kmod_loader::normalize_alias;
/// assert_eq!(normalize_alias("usb:v1234p*d[0-9]*").unwrap(), "usb:v1234p*d[0-9]*");
/// assert_eq!(normalize_alias("platform:foo-bar").unwrap(), "platform:foo_bar");
/// assert!(normalize_alias("pci:v[12").is_err());
/// ```
pub fn normalize_alias(alias: &str) -> Result<String, AliasError> {
    if alias.is_empty() {
        return Err(AliasError::Empty);
    }
    if alias.len() > MAX_ALIAS_LEN {
        return Err(AliasError::TooLong(alias.len()));
    }
    let bytes = alias.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' => out.push(b'_'),
            b']' => return Err(AliasError::UnmatchedBracket(alias.to_owned())),
            b'[' => {
                let close = bytes[i..]
                    .iter()
                    .position(|&b| b == b']')
                    .ok_or_else(|| AliasError::UnmatchedBracket(alias.to_owned()))?;
                out.extend_from_slice(&bytes[i..=i + close]);
                i += close;
            }
            b => out.push(b),
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes, so the output is still UTF-8.
    String::from_utf8(out).map_err(|_| AliasError::UnmatchedBracket(alias.to_owned()))
}

/// Replaces every `-` with `_` (libkmod's `underscores` for names in configuration lines that
/// are not alias patterns, such as `options`, `blacklist` and `softdep` module names).
///
/// libkmod's `underscores` also keeps brackets verbatim; this does the same.
pub fn underscores(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_bracket = false;
    for c in name.chars() {
        match c {
            '[' => {
                in_bracket = true;
                out.push(c);
            }
            ']' => {
                in_bracket = false;
                out.push(c);
            }
            '-' if !in_bracket => out.push('_'),
            _ => out.push(c),
        }
    }
    out
}

/// The module name of a module file path: its file name up to the first `.`, with `-` turned
/// into `_` (`kernel/drivers/net/e1000e.ko.xz` → `e1000e`, `snd-hda-intel.ko` →
/// `snd_hda_intel`).
pub fn module_name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split('.').next().unwrap_or(base);
    stem.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_outside_brackets_become_underscores() {
        assert_eq!(normalize_alias("a-b[x-y]c-d").unwrap(), "a_b[x-y]c_d");
    }

    #[test]
    fn unmatched_brackets_are_rejected() {
        assert!(matches!(
            normalize_alias("a[b"),
            Err(AliasError::UnmatchedBracket(_))
        ));
        assert!(matches!(
            normalize_alias("a]b"),
            Err(AliasError::UnmatchedBracket(_))
        ));
        assert_eq!(normalize_alias(""), Err(AliasError::Empty));
        assert_eq!(
            normalize_alias(&"a".repeat(5000)),
            Err(AliasError::TooLong(5000))
        );
    }

    #[test]
    fn bracket_content_is_kept_up_to_the_first_close() {
        assert_eq!(
            normalize_alias("[]-]").unwrap_err(),
            AliasError::UnmatchedBracket("[]-]".into())
        );
        assert_eq!(normalize_alias("[!-]-").unwrap(), "[!-]_");
    }

    #[test]
    fn module_names_are_cut_at_the_first_dot_and_underscored() {
        assert_eq!(
            module_name_from_path("kernel/a/snd-hda-intel.ko.xz"),
            "snd_hda_intel"
        );
        assert_eq!(module_name_from_path("e1000e.ko"), "e1000e");
        assert_eq!(underscores("snd-pcsp"), "snd_pcsp");
    }
}
