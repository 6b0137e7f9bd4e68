//! Restart policy: backoff parameters loaded from TOML, with per-DN overrides.
//!
//! ```toml
//! [defaults]                    # every field optional; Go's values when absent
//! initial_interval = "500ms"
//! multiplier = 1.5
//! randomization_factor = 0.5
//! max_interval = "60s"
//!
//! [overrides."root.devmgr.listener"]   # exact DN; unspecified fields come from [defaults]
//! initial_interval = "100ms"
//! max_interval = "5s"
//! ```
//!
//! Durations are Go-style strings ([`crate::parse_duration`]): `"500ms"`, `"1.5s"`, `"1m30s"`,
//! at most a day. A bad file is rejected with a [`PolicyError`] naming the line and field at
//! fault.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::backoff::{BackoffParams, InvalidPolicy, MIN_INITIAL_INTERVAL};
use crate::duration::parse_duration;
use crate::name::is_valid_name;

/// Backoff parameters for every node, with per-DN overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestartPolicy {
    defaults: BackoffParams,
    overrides: BTreeMap<String, BackoffParams>,
}

/// A rejected restart policy file: where, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid restart policy at line {line}, column {column}{}: {message}",
    field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct PolicyError {
    /// 1-based line of the fault.
    pub line: usize,
    /// 1-based column of the fault.
    pub column: usize,
    /// Dotted path of the field at fault (e.g. `overrides."root.a".multiplier`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl RestartPolicy {
    /// A policy with the given defaults and no overrides. Fails when the parameters do not pass
    /// [`BackoffParams::validate`] (they would make restarts spin).
    pub fn new(defaults: BackoffParams) -> Result<Self, InvalidPolicy> {
        defaults.validate()?;
        Ok(Self {
            defaults,
            overrides: BTreeMap::new(),
        })
    }

    /// Adds (or replaces) the parameters used for the node at `dn`. Fails when `dn` is not a
    /// DN (`root` or `root.<name>...`) or the parameters do not pass
    /// [`BackoffParams::validate`].
    pub fn with_override(
        mut self,
        dn: impl Into<String>,
        params: BackoffParams,
    ) -> Result<Self, InvalidPolicy> {
        let dn = dn.into();
        if !is_valid_dn(&dn) {
            return Err(InvalidPolicy::Dn(dn));
        }
        params.validate()?;
        self.overrides.insert(dn, params);
        Ok(self)
    }

    /// The default parameters.
    pub fn defaults(&self) -> BackoffParams {
        self.defaults
    }

    /// The parameters for the node at `dn`: its override, else the defaults.
    pub fn params_for(&self, dn: &str) -> BackoffParams {
        self.overrides.get(dn).copied().unwrap_or(self.defaults)
    }

    /// Parses a policy from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            error_at(text, offset, None, e.message().to_string())
        })?;
        Self::from_raw(text, raw)
    }

    /// Checks a policy that was read as one table of a larger TOML document (e.g. `[restart]`
    /// of an application's configuration file): `text` is the whole document, so the errors
    /// name its lines. `prefix` is the table's key, used in the field names of errors.
    ///
    /// ```
    /// # use supervisor::{PolicySection, RestartPolicy};
    /// #[derive(serde::Deserialize)]
    /// struct AppConfig { restart: Option<PolicySection> }
    ///
    /// let text = "[restart.defaults]\ninitial_interval = \"1us\"\n";
    /// let app: AppConfig = toml::from_str(text).unwrap();
    /// let err = RestartPolicy::from_section(text, "restart", app.restart.unwrap()).unwrap_err();
    /// assert_eq!(err.line, 2);
    /// assert_eq!(err.field.as_deref(), Some("restart.defaults.initial_interval"));
    /// ```
    pub fn from_section(
        text: &str,
        prefix: &str,
        section: PolicySection,
    ) -> Result<Self, PolicyError> {
        let mut policy = Self::from_raw(text, section.0);
        if let Err(e) = &mut policy
            && let Some(field) = &mut e.field
        {
            *field = format!("{prefix}.{field}");
        }
        policy
    }

    fn from_raw(text: &str, raw: RawPolicy) -> Result<Self, PolicyError> {
        let base = BackoffParams::default();
        let defaults = match &raw.defaults {
            Some(d) => d.resolve(text, base, "defaults")?,
            None => base,
        };
        let mut overrides = BTreeMap::new();
        for (dn, params) in raw.overrides.unwrap_or_default() {
            let prefix = format!("overrides.{dn:?}");
            if !is_valid_dn(&dn) {
                return Err(error_at(
                    text,
                    params.span().start,
                    Some(prefix),
                    format!("{dn:?} is not a valid DN (expected `root` or `root.<name>...`)"),
                ));
            }
            let resolved = params.get_ref().resolve(text, defaults, &prefix)?;
            overrides.insert(dn, resolved);
        }
        Ok(Self {
            defaults,
            overrides,
        })
    }
}

fn is_valid_dn(dn: &str) -> bool {
    let mut parts = dn.split('.');
    parts.next() == Some("root") && parts.all(is_valid_name)
}

/// A restart policy as a table of a larger TOML document, with the positions of its values;
/// checked by [`RestartPolicy::from_section`]. Same keys as a policy file.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct PolicySection(RawPolicy);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    defaults: Option<RawParams>,
    overrides: Option<BTreeMap<String, Spanned<RawParams>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    initial_interval: Option<Spanned<String>>,
    multiplier: Option<Spanned<f64>>,
    randomization_factor: Option<Spanned<f64>>,
    max_interval: Option<Spanned<String>>,
}

impl RawParams {
    fn resolve(
        &self,
        text: &str,
        base: BackoffParams,
        prefix: &str,
    ) -> Result<BackoffParams, PolicyError> {
        let field = |name: &str| Some(format!("{prefix}.{name}"));
        let mut p = base;
        if let Some(v) = &self.initial_interval {
            p.initial_interval = parse_duration(v.get_ref())
                .map_err(|m| error_at(text, v.span().start, field("initial_interval"), m))?;
            if p.initial_interval < MIN_INITIAL_INTERVAL {
                return Err(error_at(
                    text,
                    v.span().start,
                    field("initial_interval"),
                    format!(
                        "initial_interval must be at least {MIN_INITIAL_INTERVAL:?} (shorter \
                         intervals restart a failing runnable in a tight loop), got {:?}",
                        p.initial_interval
                    ),
                ));
            }
        }
        if let Some(v) = &self.max_interval {
            p.max_interval = parse_duration(v.get_ref())
                .map_err(|m| error_at(text, v.span().start, field("max_interval"), m))?;
        }
        if let Some(v) = &self.multiplier {
            p.multiplier = *v.get_ref();
            if !(p.multiplier.is_finite() && p.multiplier >= 1.0) {
                return Err(error_at(
                    text,
                    v.span().start,
                    field("multiplier"),
                    format!(
                        "multiplier must be a finite number >= 1, got {}",
                        p.multiplier
                    ),
                ));
            }
        }
        if let Some(v) = &self.randomization_factor {
            p.randomization_factor = *v.get_ref();
            if !(0.0..=1.0).contains(&p.randomization_factor) {
                return Err(error_at(
                    text,
                    v.span().start,
                    field("randomization_factor"),
                    format!(
                        "randomization_factor must be within [0, 1], got {}",
                        p.randomization_factor
                    ),
                ));
            }
        }
        if p.initial_interval > p.max_interval {
            let (span, name) = match (&self.initial_interval, &self.max_interval) {
                (Some(v), _) => (v.span(), "initial_interval"),
                (None, Some(v)) => (v.span(), "max_interval"),
                (None, None) => (Range { start: 0, end: 0 }, "initial_interval"),
            };
            return Err(error_at(
                text,
                span.start,
                field(name),
                format!(
                    "initial_interval ({:?}) must not exceed max_interval ({:?})",
                    p.initial_interval, p.max_interval
                ),
            ));
        }
        // Every check above has a field and a line; this only guards against the two lists of
        // checks drifting apart.
        if let Err(e) = p.validate() {
            let (f, message) = match e {
                InvalidPolicy::Param { field, message } => (field, message),
                InvalidPolicy::Dn(dn) => ("", dn),
            };
            return Err(error_at(text, 0, field(f), message));
        }
        Ok(p)
    }
}

/// Builds an error at a byte offset, finding line, column and (if not given) the field from the
/// text: the key on that line, prefixed by the enclosing `[table]` header.
fn error_at(text: &str, offset: usize, field: Option<String>, message: String) -> PolicyError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    let field = field.or_else(|| field_on_line(text, line_start));
    PolicyError {
        line,
        column,
        field,
        message,
    }
}

fn field_on_line(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let header = |l: &str| {
        let l = l.trim();
        (l.starts_with('[') && l.ends_with(']'))
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() || line.starts_with('#') {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(header);
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_empty_file_gives_the_go_defaults() {
        let p = RestartPolicy::from_toml_str("").unwrap();
        assert_eq!(p, RestartPolicy::default());
        assert_eq!(p.params_for("root.any"), BackoffParams::default());
    }

    #[test]
    fn defaults_and_per_dn_overrides_are_applied() {
        let p = RestartPolicy::from_toml_str(
            r#"
[defaults]
initial_interval = "1s"
multiplier = 2.0
randomization_factor = 0.0
max_interval = "2m"

[overrides."root.devmgr.listener"]
initial_interval = "100ms"
"#,
        )
        .unwrap();
        let d = p.defaults();
        assert_eq!(d.initial_interval, Duration::from_secs(1));
        assert_eq!(d.multiplier, 2.0);
        assert_eq!(d.randomization_factor, 0.0);
        assert_eq!(d.max_interval, Duration::from_secs(120));
        let l = p.params_for("root.devmgr.listener");
        assert_eq!(l.initial_interval, Duration::from_millis(100));
        assert_eq!(
            l.multiplier, 2.0,
            "unset override fields come from [defaults]"
        );
        assert_eq!(p.params_for("root.devmgr"), d);
    }

    #[test]
    fn a_bad_duration_names_line_and_field() {
        let e =
            RestartPolicy::from_toml_str("[defaults]\nmultiplier = 1.5\nmax_interval = \"ten\"\n")
                .unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.field.as_deref(), Some("defaults.max_interval"));
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_line_and_field() {
        let e = RestartPolicy::from_toml_str("[defaults]\n\nmultiplier = \"fast\"\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.field.as_deref(), Some("defaults.multiplier"));
    }

    #[test]
    fn an_unknown_field_names_line_and_field() {
        let e = RestartPolicy::from_toml_str("[defaults]\nmax_elapsed = \"1s\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.field.as_deref(), Some("defaults.max_elapsed"));
        assert!(e.message.contains("max_elapsed"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_rejected_with_their_field() {
        let e =
            RestartPolicy::from_toml_str("[overrides.\"root.a\"]\nrandomization_factor = 1.5\n")
                .unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.field.as_deref(),
            Some("overrides.\"root.a\".randomization_factor")
        );
        let e = RestartPolicy::from_toml_str("[defaults]\nmultiplier = 0.5\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (2, Some("defaults.multiplier"))
        );
        let e = RestartPolicy::from_toml_str(
            "[defaults]\ninitial_interval = \"2m\"\nmax_interval = \"1m\"\n",
        )
        .unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (2, Some("defaults.initial_interval"))
        );
    }

    #[test]
    fn an_initial_interval_below_the_floor_is_rejected_with_line_and_field() {
        for bad in ["0s", "1ns", "999us"] {
            let e = RestartPolicy::from_toml_str(&format!(
                "[defaults]\nmultiplier = 2.0\ninitial_interval = \"{bad}\"\n"
            ))
            .unwrap_err();
            assert_eq!(
                (e.line, e.field.as_deref()),
                (3, Some("defaults.initial_interval")),
                "{bad}: {e}"
            );
            assert!(e.message.contains("at least 1ms"), "{e}");
            let e = RestartPolicy::from_toml_str(&format!(
                "[overrides.\"root.a\"]\n\ninitial_interval = \"{bad}\"\n"
            ))
            .unwrap_err();
            assert_eq!(
                (e.line, e.field.as_deref()),
                (3, Some("overrides.\"root.a\".initial_interval")),
                "{bad}: {e}"
            );
        }
        let p = RestartPolicy::from_toml_str("[defaults]\ninitial_interval = \"1ms\"\n").unwrap();
        assert_eq!(p.defaults().initial_interval, Duration::from_millis(1));
    }

    #[test]
    fn a_nan_or_infinite_number_is_rejected_with_its_field() {
        for (key, value) in [
            ("multiplier", "nan"),
            ("multiplier", "inf"),
            ("randomization_factor", "nan"),
        ] {
            let e = RestartPolicy::from_toml_str(&format!("[defaults]\n{key} = {value}\n"))
                .unwrap_err();
            assert_eq!(e.line, 2, "{e}");
            assert_eq!(e.field, Some(format!("defaults.{key}")));
        }
    }

    #[test]
    fn the_programmatic_constructors_validate_too() {
        let d = BackoffParams::default();
        let zero = BackoffParams {
            initial_interval: Duration::ZERO,
            ..d
        };
        assert!(matches!(
            RestartPolicy::new(zero),
            Err(InvalidPolicy::Param {
                field: "initial_interval",
                ..
            })
        ));
        let nan = BackoffParams {
            multiplier: f64::NAN,
            ..d
        };
        assert!(matches!(
            RestartPolicy::new(nan),
            Err(InvalidPolicy::Param {
                field: "multiplier",
                ..
            })
        ));
        let p = RestartPolicy::new(d).unwrap();
        assert!(matches!(
            p.clone().with_override("root.a", zero),
            Err(InvalidPolicy::Param {
                field: "initial_interval",
                ..
            })
        ));
        assert_eq!(
            p.clone().with_override("devmgr.x", d),
            Err(InvalidPolicy::Dn("devmgr.x".to_string()))
        );
        assert_eq!(
            p.clone().with_override("root.ABC", d),
            Err(InvalidPolicy::Dn("root.ABC".to_string()))
        );
        let fast = BackoffParams {
            initial_interval: Duration::from_millis(10),
            ..d
        };
        let p = p.with_override("root.a", fast).unwrap();
        assert_eq!(p.params_for("root.a"), fast);
        assert_eq!(p.params_for("root.b"), d);
    }

    #[test]
    fn an_override_for_an_invalid_dn_is_rejected() {
        let e = RestartPolicy::from_toml_str("[overrides.\"devmgr.x\"]\nmultiplier = 2.0\n")
            .unwrap_err();
        assert!(e.message.contains("not a valid DN"), "{e}");
        assert_eq!(e.field.as_deref(), Some("overrides.\"devmgr.x\""));
    }

    #[test]
    fn invalid_toml_syntax_is_reported_with_its_line() {
        let e = RestartPolicy::from_toml_str("[defaults]\nmultiplier = \n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn durations_accept_units_and_fractions() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1ns"), Ok(Duration::from_nanos(1)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
