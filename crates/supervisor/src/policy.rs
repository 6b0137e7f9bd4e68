//! Restart policy: backoff parameters loaded from TOML, with per-DN overrides, and policies
//! attached to subtrees ([`SubtreePolicy`], keys relative to the attach point). Durations are
//! Go-style strings ([`crate::parse_duration`]), at most a day.
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

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::backoff::{BackoffParams, InvalidPolicy, MIN_INITIAL_INTERVAL};
use crate::duration::parse_duration;
use crate::name::is_valid_name;

/// The backoff parameters of a whole tree: defaults, per-node overrides by absolute DN, and
/// [`SubtreePolicy`]s attached to subtrees. Set with
/// [`Options::restart_policy`](crate::Options::restart_policy).
///
/// # Subtrees, relative DNs and precedence
///
/// A subsystem that can be mounted anywhere in a tree (devmgr under `root.devmgr` on its own,
/// under `root.agent.devices` in a node agent) writes its policy as a [`SubtreePolicy`], whose
/// override keys are DNs *relative to the node the policy is attached at*: `listener` names the
/// child `listener` of that node, `listener.worker` a grandchild. The node itself gets the
/// subtree policy's defaults. Whoever builds the tree attaches it where it mounted the subsystem:
///
/// ```
/// use std::time::Duration;
/// use supervisor::{RestartPolicy, SubtreePolicy};
///
/// // The subsystem's table (e.g. devmgr's `[restart]`): relative to the subsystem's node.
/// let devmgr = SubtreePolicy::from_toml_str(r#"
///     [defaults]
///     max_interval = "1m30s"
///     [overrides.listener]
///     initial_interval = "100ms"
///     [overrides.loader]
///     initial_interval = "2s"
/// "#)?;
/// // The agent's own policy: absolute DNs. It runs devmgr as `root.agent.devices`.
/// let policy = RestartPolicy::from_toml_str(r#"
///     [defaults]
///     max_interval = "45s"
///     [overrides."root.agent.devices.loader"]
///     initial_interval = "300ms"
/// "#)?
/// .attach("root.agent.devices", devmgr)?;
///
/// let p = |dn: &str| policy.params_for(dn);
/// // The attached policy's overrides, relative to `root.agent.devices`...
/// assert_eq!(p("root.agent.devices.listener").initial_interval, Duration::from_millis(100));
/// // ... its defaults for the rest of the subtree, the attach point included...
/// assert_eq!(p("root.agent.devices").max_interval, Duration::from_secs(90));
/// assert_eq!(p("root.agent.devices.coldplug").max_interval, Duration::from_secs(90));
/// // ... but the agent's own override of a node wins (its unset fields: the agent's defaults).
/// assert_eq!(p("root.agent.devices.loader").initial_interval, Duration::from_millis(300));
/// assert_eq!(p("root.agent.devices.loader").max_interval, Duration::from_secs(45));
/// // Outside the subtree, the agent's defaults.
/// assert_eq!(p("root.agent").max_interval, Duration::from_secs(45));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The parameters of the node at a DN are decided from the outside in, by the first that
/// applies:
///
/// 1. an override of this policy naming exactly that DN (the tree's owner has the last word,
///    also inside an attached subtree);
/// 2. the subtree policy attached at the deepest attach point at or above the DN, asked the
///    same way with the DN made relative to its attach point (its own exact override, then the
///    policies attached inside it, then its defaults);
/// 3. this policy's defaults.
///
/// Unset fields of an override come from the defaults of the policy that holds the override.
/// Overrides apply to exactly one node, never to its children. A subtree is matched by whole
/// names: a policy attached at `root.a` does not cover `root.ab`.
///
/// # Overrides that name no node
///
/// A DN in a policy (an override, or an attach point) that does not name a node of the running
/// tree is reported, so that a typo such as `root.devmgr.listner` does not go unnoticed. Nodes
/// appear over time, so a DN counts as *unmatched* only when no node has it and the nearest
/// existing node above it has signalled Healthy (or Done) in its current incarnation: from then
/// on that node cannot start children ([`Error::NotNew`](crate::Error::NotNew)) until it
/// restarts, so the DN cannot appear before then. Below a node that stays New (one that has
/// not signalled Healthy yet, or never does) a DN is never unmatched: it may still appear.
///
/// Whenever the tree has settled (no start or exit for the settle detector's quiet period, as
/// for [`Supervisor::wait_settled`](crate::Supervisor::wait_settled)) and something changed
/// since the last look, the supervisor checks every DN of its policy and logs a warning at the
/// supervisor's DN for each unmatched one, once per DN for the life of the supervisor, naming
/// the closest existing DN when one is close (a likely intended node);
/// [`Supervisor::unmatched_overrides`](crate::Supervisor::unmatched_overrides) applies the rule
/// to the current tree on demand. When an attach point is unmatched, only the attachment is
/// reported, not the DNs inside the attached policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestartPolicy {
    layer: Layer,
}

/// The backoff parameters of a subtree, to be attached to the node the subtree starts at with
/// [`RestartPolicy::attach`] (or, nested, [`SubtreePolicy::attach`]): defaults for every node
/// of the subtree, the attach point included, and overrides by DN *relative to the attach
/// point* (`listener`, `listener.worker`; never the attach point itself, which takes the
/// defaults). See [`RestartPolicy`] for the precedence and the reporting of overrides that name
/// no node.
///
/// The TOML format is that of [`RestartPolicy::from_toml_str`] with relative keys:
///
/// ```toml
/// [defaults]
/// max_interval = "1m30s"
///
/// [overrides.listener]            # the child `listener` of the node attached at
/// initial_interval = "100ms"
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubtreePolicy {
    layer: Layer,
}

/// Defaults, overrides and attached policies, keyed by DNs in one scope: absolute in the tree's
/// policy, relative to the attach point in a subtree policy.
#[derive(Debug, Clone, Default, PartialEq)]
struct Layer {
    defaults: BackoffParams,
    overrides: BTreeMap<String, BackoffParams>,
    attached: BTreeMap<String, Layer>,
}

impl Layer {
    fn new(defaults: BackoffParams) -> Result<Self, InvalidPolicy> {
        defaults.validate()?;
        Ok(Self {
            defaults,
            ..Self::default()
        })
    }

    /// The parameters at `path` (a DN in this layer's scope; empty for the attach point).
    fn params_for(&self, path: &str) -> BackoffParams {
        if let Some(p) = self.overrides.get(path) {
            return *p;
        }
        // The deepest attach point at or above `path`.
        let mut prefix = path;
        loop {
            if let Some(layer) = self.attached.get(prefix) {
                let rest = path[prefix.len()..].strip_prefix('.').unwrap_or("");
                return layer.params_for(rest);
            }
            match prefix.rfind('.') {
                Some(i) => prefix = &prefix[..i],
                None => return self.defaults,
            }
        }
    }

    /// Every DN of the layer and of the layers attached to it, as absolute DNs: `base` is the
    /// attach point of this layer (`None` for the tree's policy).
    fn entries(&self, base: Option<&str>, out: &mut Vec<Entry>) {
        let join = |key: &str| match base {
            Some(b) => format!("{b}.{key}"),
            None => key.to_string(),
        };
        for key in self.overrides.keys() {
            out.push(Entry {
                dn: join(key),
                key: key.clone(),
                attached_at: base.map(str::to_string),
                attachment: false,
            });
        }
        for (key, layer) in &self.attached {
            let dn = join(key);
            out.push(Entry {
                dn: dn.clone(),
                key: key.clone(),
                attached_at: base.map(str::to_string),
                attachment: true,
            });
            layer.entries(Some(&dn), out);
        }
    }
}

/// A DN named by a policy (an override or an attach point), made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) dn: String,
    pub(crate) key: String,
    pub(crate) attached_at: Option<String>,
    pub(crate) attachment: bool,
}

/// Which kind of DN a policy's keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Absolute: `root` or `root.<name>...`.
    Tree,
    /// Relative to the attach point: `<name>` or `<name>.<name>...`.
    Subtree,
}

impl Scope {
    fn check(self, dn: &str) -> Result<(), InvalidPolicy> {
        match self {
            Scope::Tree if !is_valid_dn(dn) => Err(InvalidPolicy::Dn(dn.to_string())),
            Scope::Subtree if !is_valid_relative_dn(dn) => {
                Err(InvalidPolicy::RelativeDn(dn.to_string()))
            }
            _ => Ok(()),
        }
    }
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
        Ok(Self {
            layer: Layer::new(defaults)?,
        })
    }

    /// Adds (or replaces) the parameters used for the node at `dn`. Fails when `dn` is not a
    /// DN (`root` or `root.<name>...`) or the parameters do not pass
    /// [`BackoffParams::validate`].
    pub fn with_override(
        self,
        dn: impl Into<String>,
        params: BackoffParams,
    ) -> Result<Self, InvalidPolicy> {
        Ok(Self {
            layer: with_override(self.layer, Scope::Tree, dn.into(), params)?,
        })
    }

    /// Attaches `subtree` at the node at `at` (an absolute DN, `root` or `root.<name>...`): its
    /// defaults apply to that node and everything below it, its overrides name nodes relative
    /// to `at`. This policy's own overrides keep precedence, also inside the subtree (see the
    /// type's docs). Attaching again at the same DN replaces the policy attached there.
    pub fn attach(
        self,
        at: impl Into<String>,
        subtree: SubtreePolicy,
    ) -> Result<Self, InvalidPolicy> {
        Ok(Self {
            layer: attach(self.layer, Scope::Tree, at.into(), subtree)?,
        })
    }

    /// The default parameters (those of nodes outside every attached subtree).
    pub fn defaults(&self) -> BackoffParams {
        self.layer.defaults
    }

    /// The parameters for the node at `dn` (absolute), resolved as the type's docs describe.
    pub fn params_for(&self, dn: &str) -> BackoffParams {
        self.layer.params_for(dn)
    }

    /// Every DN the policy names (its overrides and attach points, and those of the attached
    /// policies), made absolute.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        self.layer.entries(None, &mut out);
        out
    }

    /// Parses a policy from TOML text (override keys are absolute DNs).
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            layer: layer_from_toml_str(text, Scope::Tree)?,
        })
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
        Ok(Self {
            layer: layer_from_section(text, prefix, section, Scope::Tree)?,
        })
    }
}

impl SubtreePolicy {
    /// A subtree policy with the given defaults and no overrides. Fails when the parameters do
    /// not pass [`BackoffParams::validate`].
    pub fn new(defaults: BackoffParams) -> Result<Self, InvalidPolicy> {
        Ok(Self {
            layer: Layer::new(defaults)?,
        })
    }

    /// Adds (or replaces) the parameters used for the node at `dn`, relative to the attach
    /// point (`listener`, `listener.worker`). Fails when `dn` is not a relative DN
    /// (`<name>` or `<name>.<name>...`) or the parameters do not pass
    /// [`BackoffParams::validate`].
    pub fn with_override(
        self,
        dn: impl Into<String>,
        params: BackoffParams,
    ) -> Result<Self, InvalidPolicy> {
        Ok(Self {
            layer: with_override(self.layer, Scope::Subtree, dn.into(), params)?,
        })
    }

    /// Attaches `subtree` at the node at `at`, relative to this policy's attach point (a
    /// subsystem mounting another one). This policy's own overrides keep precedence inside it,
    /// as with [`RestartPolicy::attach`]. Attaching again at the same DN replaces the policy
    /// attached there.
    pub fn attach(
        self,
        at: impl Into<String>,
        subtree: SubtreePolicy,
    ) -> Result<Self, InvalidPolicy> {
        Ok(Self {
            layer: attach(self.layer, Scope::Subtree, at.into(), subtree)?,
        })
    }

    /// The default parameters of the subtree's nodes (the attach point included).
    pub fn defaults(&self) -> BackoffParams {
        self.layer.defaults
    }

    /// The parameters for the node at `dn`, relative to the attach point (`""` for the attach
    /// point itself), resolved as [`RestartPolicy`]'s docs describe.
    pub fn params_for(&self, dn: &str) -> BackoffParams {
        self.layer.params_for(dn)
    }

    /// Parses a subtree policy from TOML text (override keys are relative DNs).
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            layer: layer_from_toml_str(text, Scope::Subtree)?,
        })
    }

    /// Checks a subtree policy that was read as one table of a larger TOML document (e.g.
    /// `[restart]` of a subsystem's configuration file), like [`RestartPolicy::from_section`].
    ///
    /// ```
    /// # use supervisor::{PolicySection, SubtreePolicy};
    /// #[derive(serde::Deserialize)]
    /// struct AppConfig { restart: Option<PolicySection> }
    ///
    /// let text = "[restart.overrides.listener]\nmax_interval = \"5s\"\n";
    /// let app: AppConfig = toml::from_str(text).unwrap();
    /// let policy = SubtreePolicy::from_section(text, "restart", app.restart.unwrap()).unwrap();
    /// assert_eq!(policy.params_for("listener").max_interval.as_secs(), 5);
    /// ```
    pub fn from_section(
        text: &str,
        prefix: &str,
        section: PolicySection,
    ) -> Result<Self, PolicyError> {
        Ok(Self {
            layer: layer_from_section(text, prefix, section, Scope::Subtree)?,
        })
    }
}

fn with_override(
    mut layer: Layer,
    scope: Scope,
    dn: String,
    params: BackoffParams,
) -> Result<Layer, InvalidPolicy> {
    scope.check(&dn)?;
    params.validate()?;
    layer.overrides.insert(dn, params);
    Ok(layer)
}

fn attach(
    mut layer: Layer,
    scope: Scope,
    at: String,
    subtree: SubtreePolicy,
) -> Result<Layer, InvalidPolicy> {
    scope.check(&at)?;
    layer.attached.insert(at, subtree.layer);
    Ok(layer)
}

fn layer_from_toml_str(text: &str, scope: Scope) -> Result<Layer, PolicyError> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        error_at(text, offset, None, e.message().to_string())
    })?;
    layer_from_raw(text, raw, scope)
}

fn layer_from_section(
    text: &str,
    prefix: &str,
    section: PolicySection,
    scope: Scope,
) -> Result<Layer, PolicyError> {
    let mut layer = layer_from_raw(text, section.0, scope);
    if let Err(e) = &mut layer
        && let Some(field) = &mut e.field
    {
        *field = format!("{prefix}.{field}");
    }
    layer
}

fn layer_from_raw(text: &str, raw: RawPolicy, scope: Scope) -> Result<Layer, PolicyError> {
    let base = BackoffParams::default();
    let defaults = match &raw.defaults {
        Some(d) => d.resolve(text, base, "defaults")?,
        None => base,
    };
    let mut overrides = BTreeMap::new();
    for (dn, params) in raw.overrides.unwrap_or_default() {
        let prefix = format!("overrides.{dn:?}");
        if let Err(e) = scope.check(&dn) {
            return Err(error_at(
                text,
                params.span().start,
                Some(prefix),
                e.to_string(),
            ));
        }
        let resolved = params.get_ref().resolve(text, defaults, &prefix)?;
        overrides.insert(dn, resolved);
    }
    Ok(Layer {
        defaults,
        overrides,
        attached: BTreeMap::new(),
    })
}

fn is_valid_dn(dn: &str) -> bool {
    let mut parts = dn.split('.');
    parts.next() == Some("root") && parts.all(is_valid_name)
}

fn is_valid_relative_dn(dn: &str) -> bool {
    dn.split('.').all(is_valid_name)
}

/// A restart policy as a table of a larger TOML document, with the positions of its values;
/// checked by [`RestartPolicy::from_section`] or [`SubtreePolicy::from_section`]. Same keys as
/// a policy file.
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
                InvalidPolicy::Dn(dn) | InvalidPolicy::RelativeDn(dn) => ("", dn),
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
    fn compound_go_durations_are_accepted_in_every_field() {
        let text = r#"
[defaults]
initial_interval = "1m30s"
max_interval = "2h45m30.5s"

[overrides."root.a"]
initial_interval = "1s500ms"
max_interval = "1h1m1s"
"#;
        let p = RestartPolicy::from_toml_str(text).unwrap();
        assert_eq!(p.defaults().initial_interval, Duration::from_secs(90));
        assert_eq!(
            p.defaults().max_interval,
            Duration::from_millis(9_930_500),
            "2h45m30.5s"
        );
        let a = p.params_for("root.a");
        assert_eq!(a.initial_interval, Duration::from_millis(1500));
        assert_eq!(a.max_interval, Duration::from_secs(3661));
        // The same text with a relative key is a subtree policy.
        let sub = SubtreePolicy::from_toml_str(&text.replace("\"root.a\"", "\"a\"")).unwrap();
        assert_eq!(sub.defaults(), p.defaults());
        assert_eq!(sub.params_for("a"), a);
        // A bad term inside a compound duration names its line and field.
        let e =
            SubtreePolicy::from_toml_str("[overrides.a]\nmax_interval = \"1m30\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (2, Some("overrides.\"a\".max_interval"))
        );
    }

    #[test]
    fn subtree_keys_are_relative_and_tree_keys_absolute() {
        let e =
            SubtreePolicy::from_toml_str("[overrides.\"a..b\"]\nmultiplier = 2.0\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("overrides.\"a..b\""));
        assert!(e.message.contains("not a valid relative DN"), "{e}");
        // `listener` is a relative DN, not an absolute one.
        let e =
            RestartPolicy::from_toml_str("[overrides.listener]\nmultiplier = 2.0\n").unwrap_err();
        assert!(e.message.contains("not a valid DN"), "{e}");
        let p = SubtreePolicy::from_toml_str("[overrides.listener]\nmultiplier = 2.0\n").unwrap();
        assert_eq!(p.params_for("listener").multiplier, 2.0);
        assert_eq!(
            p.params_for("").multiplier,
            1.5,
            "the attach point: defaults"
        );
    }

    #[test]
    fn attaching_again_at_the_same_dn_replaces_the_policy() {
        let d = BackoffParams::default();
        let with = |ms: u64| BackoffParams {
            initial_interval: Duration::from_millis(ms),
            ..d
        };
        let p = RestartPolicy::default()
            .attach("root.a", SubtreePolicy::new(with(10)).unwrap())
            .unwrap()
            .attach("root.a", SubtreePolicy::new(with(20)).unwrap())
            .unwrap();
        assert_eq!(p.params_for("root.a.x"), with(20));
        assert_eq!(p.entries().len(), 1);
        // An attachment at `root` covers the whole tree below the tree's own overrides.
        let p = RestartPolicy::default()
            .with_override("root.b", with(30))
            .unwrap()
            .attach("root", SubtreePolicy::new(with(40)).unwrap())
            .unwrap();
        assert_eq!(p.params_for("root"), with(40));
        assert_eq!(p.params_for("root.a"), with(40));
        assert_eq!(p.params_for("root.b"), with(30));
    }

    #[test]
    fn entries_name_every_dn_absolutely() {
        let d = BackoffParams::default();
        let inner = SubtreePolicy::default().with_override("w", d).unwrap();
        let sub = SubtreePolicy::default()
            .with_override("listener", d)
            .unwrap()
            .attach("loader", inner)
            .unwrap();
        let p = RestartPolicy::default()
            .with_override("root.x", d)
            .unwrap()
            .attach("root.agent.devices", sub)
            .unwrap();
        let got: Vec<(String, String, Option<String>, bool)> = p
            .entries()
            .into_iter()
            .map(|e| (e.dn, e.key, e.attached_at, e.attachment))
            .collect();
        let s = |v: &str| v.to_string();
        let at = |v: &str| Some(v.to_string());
        assert_eq!(
            got,
            [
                (s("root.x"), s("root.x"), None, false),
                (s("root.agent.devices"), s("root.agent.devices"), None, true),
                (
                    s("root.agent.devices.listener"),
                    s("listener"),
                    at("root.agent.devices"),
                    false
                ),
                (
                    s("root.agent.devices.loader"),
                    s("loader"),
                    at("root.agent.devices"),
                    true
                ),
                (
                    s("root.agent.devices.loader.w"),
                    s("w"),
                    at("root.agent.devices.loader"),
                    false
                ),
            ]
        );
    }
}
