//! A byte-wise `fnmatch(3)` with flags 0, as libkmod calls it
//! (`docs/kmod-loader.md#pattern-matching`).
//!
//! * `*` matches any run of bytes, including `/` and a leading `.`;
//! * `?` matches one byte;
//! * `[...]` matches one byte from a list of bytes and ranges (`a-z`); `[!...]` and `[^...]`
//!   negate; a `]` right after the opening `[` (or `[!`) is a member; `-` first or last is a
//!   member; POSIX classes such as `[:xdigit:]` are understood (C locale);
//! * `\c` matches `c` literally (also inside brackets); a pattern that ends in a lone `\`
//!   matches nothing (glibc: "trailing \ loses");
//! * a `[` without a closing `]` matches a literal `[`.
//!
//! The pattern is first compiled to [`Token`]s; the search of a binary index reuses them
//! ([`crate::binindex::BinFile::search_wild`]).

/// A set of bytes, one bit per byte value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    /// Adds one byte.
    pub fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    /// Adds an inclusive range; an inverted range adds nothing (like glibc).
    pub fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }

    /// Whether the byte is a member.
    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    /// The complement.
    pub fn complement(self) -> Self {
        let [a, b, c, d] = self.0;
        ByteSet([!a, !b, !c, !d])
    }
}

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// A literal byte.
    Literal(u8),
    /// `?`: any one byte.
    Any,
    /// `*`: any run of bytes (consecutive stars are collapsed).
    Star,
    /// A bracket expression.
    Class(ByteSet),
}

fn posix_class(name: &[u8]) -> Option<ByteSet> {
    let pred: fn(u8) -> bool = match name {
        b"alpha" => |b| b.is_ascii_alphabetic(),
        b"digit" => |b| b.is_ascii_digit(),
        b"alnum" => |b| b.is_ascii_alphanumeric(),
        b"upper" => |b| b.is_ascii_uppercase(),
        b"lower" => |b| b.is_ascii_lowercase(),
        b"xdigit" => |b| b.is_ascii_hexdigit(),
        b"space" => |b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b"blank" => |b| b == b' ' || b == b'\t',
        b"punct" => |b| b.is_ascii_punctuation(),
        b"print" => |b| (0x20..0x7f).contains(&b),
        b"graph" => |b| b.is_ascii_graphic(),
        b"cntrl" => |b| b.is_ascii_control(),
        _ => return None,
    };
    let mut set = ByteSet::default();
    for b in 0..=u8::MAX {
        if pred(b) {
            set.insert(b);
        }
    }
    Some(set)
}

/// Parses the bracket expression starting at `pat[start] == b'['`. Returns the set and the
/// index just past the closing `]`, or `None` if the bracket is not closed (or a backslash
/// inside it is the last byte).
fn parse_bracket(pat: &[u8], start: usize) -> Option<(ByteSet, usize)> {
    let mut j = start + 1;
    let negate = matches!(pat.get(j), Some(b'!' | b'^'));
    if negate {
        j += 1;
    }
    let mut set = ByteSet::default();
    let mut first = true;
    loop {
        let mut c = *pat.get(j)?;
        if c == b']' && !first {
            j += 1;
            break;
        }
        first = false;
        if c == b'[' && pat.get(j + 1) == Some(&b':') {
            // A POSIX class `[:name:]`; if it is not well formed, `[` is an ordinary member.
            if let Some(class) = pat[j + 2..]
                .windows(2)
                .position(|w| w == b":]")
                .and_then(|len| Some((len, posix_class(&pat[j + 2..j + 2 + len])?)))
            {
                let (len, class) = class;
                for b in 0..=u8::MAX {
                    if class.contains(b) {
                        set.insert(b);
                    }
                }
                j += len + 4;
                continue;
            }
        }
        if c == b'\\' {
            j += 1;
            c = *pat.get(j)?;
        }
        j += 1;
        if pat.get(j) == Some(&b'-') && pat.get(j + 1).is_some_and(|&n| n != b']') {
            let mut hi = *pat.get(j + 1)?;
            j += 2;
            if hi == b'\\' {
                hi = *pat.get(j)?;
                j += 1;
            }
            set.insert_range(c, hi);
        } else {
            set.insert(c);
        }
    }
    Some((if negate { set.complement() } else { set }, j))
}

/// Compiles a pattern into tokens. Returns `None` for a pattern that can match nothing (one
/// that ends in a lone backslash).
pub fn compile(pat: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::with_capacity(pat.len());
    compile_into(pat, &mut out).then_some(out)
}

/// Like [`compile`], into a reused buffer (cleared first); returns `false` for a pattern that
/// can match nothing.
pub fn compile_into(pat: &[u8], out: &mut Vec<Token>) -> bool {
    out.clear();
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            b'*' => {
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            b'?' => {
                out.push(Token::Any);
                i += 1;
            }
            b'[' => match parse_bracket(pat, i) {
                Some((set, next)) => {
                    out.push(Token::Class(set));
                    i = next;
                }
                None => {
                    out.push(Token::Literal(b'['));
                    i += 1;
                }
            },
            b'\\' => {
                let Some(&c) = pat.get(i + 1) else {
                    return false;
                };
                out.push(Token::Literal(c));
                i += 2;
            }
            c => {
                out.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    true
}

/// Matches compiled tokens against a whole string (anchored at both ends), in O(len × tokens)
/// with the classic single backtrack point for `*`.
pub fn match_tokens(tokens: &[Token], text: &[u8]) -> bool {
    let (mut t, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < text.len() {
        let step = match tokens.get(t) {
            Some(Token::Literal(c)) => *c == text[s],
            Some(Token::Any) => true,
            Some(Token::Class(set)) => set.contains(text[s]),
            Some(Token::Star) => {
                star = Some((t, s));
                t += 1;
                continue;
            }
            None => false,
        };
        if step {
            t += 1;
            s += 1;
        } else if let Some((st, ss)) = star {
            t = st + 1;
            s = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return false;
        }
    }
    tokens[t.min(tokens.len())..]
        .iter()
        .all(|tok| *tok == Token::Star)
}

/// `fnmatch(pattern, text, 0) == 0`.
///
/// ```
/// use kmod_loader::fnmatch::fnmatch;
/// assert!(fnmatch(b"usb:v*p*d0[1-9A]*", b"usb:v1d6bp0002d0A12"));
/// assert!(fnmatch(b"a*b", b"a/.x/b"));
/// assert!(!fnmatch(b"[!a]", b"a"));
/// ```
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    compile(pattern).is_some_and(|tokens| match_tokens(&tokens, text))
}

/// Where the first wildcard byte (`*`, `?`, `[`) of an alias pattern is, if it has one.
pub fn first_wildcard(pattern: &[u8]) -> Option<usize> {
    pattern.iter().position(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Whether alias `pattern` matches `alias` by libkmod's rule (`index_searchwild`): the bytes
/// before the first wildcard are compared literally (a backslash there is a byte like any
/// other), the rest with [`fnmatch`]; a pattern without wildcards is an exact key.
///
/// ```
/// use kmod_loader::fnmatch::{alias_matches, fnmatch};
/// assert!(alias_matches(b"pci:v*", b"pci:v00008086"));
/// assert!(alias_matches(b"a\\*", b"a\\"));
/// assert!(!fnmatch(b"a\\*", b"a\\"), "fnmatch reads the backslash as an escape");
/// assert!(alias_matches(b"ab\\", b"ab\\"), "an exact key, though fnmatch matches nothing");
/// ```
pub fn alias_matches(pattern: &[u8], alias: &[u8]) -> bool {
    match first_wildcard(pattern) {
        None => pattern == alias,
        Some(w) => alias.get(..w) == Some(&pattern[..w]) && fnmatch(&pattern[w..], &alias[w..]),
    }
}

/// Whether some alias matches `pattern` by [`alias_matches`]'s rule: all but a pattern whose
/// part from the first wildcard on ends in a lone backslash.
pub fn alias_can_match(pattern: &[u8]) -> bool {
    first_wildcard(pattern).is_none_or(|w| compile(&pattern[w..]).is_some())
}

/// A concrete string that an alias pattern matches, for building test and benchmark corpora:
/// the bytes before the first `*`, `?` or `[` as they are (libkmod compares them literally),
/// then `*` and `?` become `0` and a bracket its smallest printable member. `None` if no
/// printable string matches.
///
/// ```
/// use kmod_loader::fnmatch::example_for;
/// assert_eq!(example_for(b"usb:v*p[0-9]d?").as_deref(), Some(&b"usb:v0p0d0"[..]));
/// ```
pub fn example_for(pattern: &[u8]) -> Option<Vec<u8>> {
    let split = first_wildcard(pattern).unwrap_or(pattern.len());
    let mut out = pattern[..split].to_vec();
    for tok in compile(&pattern[split..])? {
        match tok {
            Token::Literal(b) => out.push(b),
            Token::Star | Token::Any => out.push(b'0'),
            Token::Class(set) => out.push((0x21u8..0x7f).find(|&b| set.contains(b))?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn star_crosses_slashes_and_dots() {
        assert!(fnmatch(b"*", b""));
        assert!(fnmatch(b"a*", b"a/b.c"));
        assert!(fnmatch(b"*.c", b".c"));
        assert!(!fnmatch(b"a*b", b"a/c"));
    }

    #[test]
    fn brackets_support_lists_ranges_and_negation() {
        assert!(fnmatch(b"d[5-9A]", b"dA"));
        assert!(fnmatch(b"d[5-9A]", b"d7"));
        assert!(!fnmatch(b"d[5-9A]", b"dB"));
        assert!(fnmatch(b"[!0-9]", b"x"));
        assert!(fnmatch(b"[^0-9]", b"/"));
        assert!(!fnmatch(b"[^0-9]", b"5"));
        assert!(fnmatch(b"[]a]", b"]"));
        assert!(fnmatch(b"[a-]", b"-"));
        assert!(fnmatch(b"[[:xdigit:]]", b"F"));
        assert!(!fnmatch(b"[z-a]", b"m"));
    }

    #[test]
    fn unclosed_bracket_is_a_literal_and_trailing_backslash_never_matches() {
        assert!(fnmatch(b"a[b", b"a[b"));
        assert!(!fnmatch(b"a\\", b"a\\"));
        assert!(fnmatch(b"a\\*", b"a*"));
        assert!(!fnmatch(b"a\\*", b"ab"));
    }

    #[test]
    fn question_mark_needs_exactly_one_byte() {
        assert!(fnmatch(b"a?c", b"abc"));
        assert!(!fnmatch(b"a?c", b"ac"));
    }
}
