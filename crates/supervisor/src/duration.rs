//! Durations in configuration files and on command lines, written as Go's `time.ParseDuration`
//! reads them (so a node agent's TOML can use the same strings as Monogon's Go code):
//! `"500ms"`, `"1.5s"`, `"1m30s"`, `"2h45m"`, `"0"`.

use std::time::Duration;

/// The longest duration accepted: one day. Nothing in a supervision tree or a device
/// manager waits longer, and the bound keeps every `Instant + duration` far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses a Go-style duration: one or more `<number><unit>` terms (units `ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`; decimal fractions allowed), or a bare `0`. Negative durations and
/// anything over [`MAX_DURATION`] are errors; the message quotes the input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "invalid duration {s:?}: expected terms like \"500ms\", \"1.5s\" or \"1m30s\" (units ns, us, ms, s, m, h)"
        )
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = next;
    }
    let duration = Duration::try_from_secs_f64(total).map_err(|_| bad())?;
    if duration > MAX_DURATION {
        return Err(format!(
            "duration {s:?} is longer than the limit of {}h",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_terms_add_up() {
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("1h0m0.5s", Duration::from_millis(3_600_500)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("1ns", Duration::from_nanos(1)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (" 10s ", Duration::from_secs(10)),
            ("24h", MAX_DURATION),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_and_unbounded_durations_are_errors_not_panics() {
        for text in [
            "",
            "10",
            "s",
            "1x",
            "-1s",
            "1.2.3s",
            ".s",
            "1e19s",
            "1e19",
            "25h",
            "1441m",
            "99999999999999999999h",
            "1s-",
            "1 s",
            "NaNs",
            "infs",
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(&format!("{:?}", text.trim())), "{text}: {err}");
        }
    }
}
