//! The kernel command line as libkmod's `kmod_config_parse_kcmdline` reads it: its state
//! machine over the bytes of `/proc/cmdline`, re-written here state for state so that every
//! odd input (quotes in odd places, a second `.`, `=` before `.`) ends as it does in modprobe.
//! The resulting rules are listed on [`Config::parse_cmdline`](super::Config::parse_cmdline).
//!
//! Words are read in four states: the module name (up to the first `.`), the parameter name
//! (up to `=`), the value, and "ignore the rest of this word". White space ends a word outside
//! quotes; inside quotes it is only allowed in the value. A `"` toggles quoting wherever it is,
//! and sends the word to "ignore" unless it is the word's first byte or inside the value. A
//! word ends complete if it got past the module name and is not quoted at its end.

use tracing::warn;

/// The most bytes of the command line libkmod parses (its buffer of `KCMD_LINE_SIZE` = 4096
/// bytes less the terminating NUL).
pub(crate) const MAX_LEN: usize = 4095;

/// What one word of the command line adds to the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A name from `modprobe.blacklist=`, as written.
    Blacklist(String),
    /// An option for a module: the underscored module name and the option text.
    Options {
        /// Module name, `-` → `_` outside brackets.
        module: String,
        /// `param` or `param=value`, tabs replaced by spaces.
        options: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The rest of the word is ignored.
    Ignore,
    /// Reading the module name, up to the first `.`.
    ModName,
    /// Reading the parameter name, up to `=` or the end of the word.
    Param,
    /// Reading the value, up to the end of the word (white space inside quotes included).
    Value,
}

/// The positions of the word being read.
#[derive(Debug, Clone, Copy)]
struct Word {
    /// Start of the module name (after a leading quote).
    start: usize,
    /// Whether the word began with a `"` (which is moved behind the `=` when complete).
    leading_quote: bool,
    /// The `.` ending the module name.
    dot: usize,
    /// Just after the `=` ending the parameter name.
    value: Option<usize>,
}

impl Word {
    fn at(start: usize) -> Word {
        Word {
            start,
            leading_quote: false,
            dot: start,
            value: None,
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a kernel command line (only its first [`MAX_LEN`] bytes, up to a NUL byte) into
/// blacklist and options entries, in command line order.
pub(crate) fn parse(text: &[u8]) -> Vec<Entry> {
    let text = &text[..text.len().min(MAX_LEN)];
    let text = match memchr::memchr(0, text) {
        Some(nul) => &text[..nul],
        None => text,
    };
    let mut out = Vec::new();
    let mut state = State::ModName;
    let mut quoted = false;
    let mut word = Word::at(0);
    // `None` is the end of the text, which ends a word like white space does.
    for i in 0..=text.len() {
        match text.get(i).copied() {
            Some(b'"') => {
                quoted = !quoted;
                if quoted && state == State::ModName && i == word.start {
                    word.leading_quote = true;
                    word.start = i + 1;
                } else if state != State::Value {
                    state = State::Ignore;
                }
            }
            None => {
                if !quoted && matches!(state, State::Param | State::Value) {
                    complete(text, word, i, &mut out);
                }
            }
            Some(b) if is_space(b) => {
                if quoted {
                    // White space only belongs in a value.
                    if state != State::Value {
                        state = State::Ignore;
                    }
                } else {
                    if matches!(state, State::Param | State::Value) {
                        complete(text, word, i, &mut out);
                    }
                    state = State::ModName;
                    word = Word::at(i + 1);
                }
            }
            Some(b'.') => match state {
                State::ModName => {
                    word.dot = i;
                    state = State::Param;
                }
                State::Param => state = State::Ignore,
                _ => {}
            },
            Some(b'=') => match state {
                State::Param => {
                    word.value = Some(i + 1);
                    state = State::Value;
                }
                State::ModName => state = State::Ignore,
                _ => {}
            },
            Some(_) => {}
        }
    }
    out
}

/// Adds the entry of a complete word ending at `end`.
fn complete(text: &[u8], word: Word, end: usize, out: &mut Vec<Entry>) {
    let module = &text[word.start..word.dot];
    let param_start = word.dot + 1;
    // A word quoted as a whole has its opening quote moved to the start of the value. (A
    // leading quote can only have been closed inside the value, so `value` is set.)
    let param: Vec<u8> = match word.value.filter(|_| word.leading_quote) {
        Some(value) => [&text[param_start..value], b"\"", &text[value..end]].concat(),
        None => text[param_start..end].to_vec(),
    };
    if module == b"modprobe"
        && let Some(names) = param.strip_prefix(b"blacklist=")
    {
        out.extend(
            names
                .split(|&b| b == b',')
                .map(|n| Entry::Blacklist(String::from_utf8_lossy(n).into_owned())),
        );
        return;
    }
    let Some(module) = underscores(module) else {
        warn!(
            module = %String::from_utf8_lossy(module),
            "ignoring a kernel command line option: bad module name"
        );
        return;
    };
    let options = String::from_utf8_lossy(&param).replace('\t', " ");
    out.push(Entry::Options { module, options });
}

/// libkmod's `underscores`: `-` → `_` outside `[...]`; `None` for a `]` outside brackets or an
/// unclosed `[`.
fn underscores(name: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        match b {
            b'-' => out.push(b'_'),
            b']' => return None,
            b'[' => {
                let close = name[i..].iter().position(|&c| c == b']')?;
                out.extend_from_slice(&name[i..=i + close]);
                i += close;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(module: &str, options: &str) -> Entry {
        Entry::Options {
            module: module.into(),
            options: options.into(),
        }
    }

    fn bl(name: &str) -> Entry {
        Entry::Blacklist(name.into())
    }

    #[test]
    fn entries_keep_command_line_order_across_kinds() {
        assert_eq!(
            parse(b"a.b=1 modprobe.blacklist=x,y c.d modprobe.blacklist=z"),
            vec![opt("a", "b=1"), bl("x"), bl("y"), opt("c", "d"), bl("z")]
        );
    }

    #[test]
    fn a_leading_quote_moves_behind_the_equals_sign() {
        // Also inside the blacklist value, where it then is part of the first name.
        assert_eq!(
            parse(b"\"p.d=file a.c +p\" \"modprobe.blacklist=x,y\""),
            vec![opt("p", "d=\"file a.c +p\""), bl("\"x"), bl("y\"")]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_stop_parsing() {
        assert_eq!(
            parse(b"a.b=\xff c\xc3.d=1 e.f=2"),
            vec![
                opt("a", "b=\u{fffd}"),
                opt("c\u{fffd}", "d=1"),
                opt("e", "f=2")
            ]
        );
    }

    #[test]
    fn underscores_keep_brackets_and_reject_bad_ones() {
        assert_eq!(underscores(b"a-b[-]c-d").as_deref(), Some("a_b[-]c_d"));
        assert_eq!(underscores(b"a]"), None);
        assert_eq!(underscores(b"a[b"), None);
        assert_eq!(underscores(b"").as_deref(), Some(""));
    }

    #[test]
    fn only_the_first_max_len_bytes_count() {
        let mut line = vec![b'x'; MAX_LEN - 4];
        line.extend_from_slice(b" a.b=1 c.d=2");
        // The command line is cut inside `a.b=1`, after the `b`.
        assert_eq!(parse(&line), vec![opt("a", "b")]);
        // Any bytes at all: no panic, output bounded by the parsed prefix.
        let noise: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(parse(&noise).len() <= MAX_LEN);
    }
}
