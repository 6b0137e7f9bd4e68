//! Alias lookup and load planning with libkmod's semantics (docs/kmod-loader.md#resolving-an-alias,
//! docs/kmod-loader.md#load-plans).

use std::collections::HashSet;
use std::path::PathBuf;

use tracing::{debug, info, warn};

use crate::config::Config;
use crate::error::{AliasError, IndexError};
use crate::fnmatch::fnmatch;
use crate::index::ModuleIndex;
use crate::normalize::normalize_alias;
use crate::options::ResolverOptions;
use crate::reload::Stamp;

/// Softdep chains deeper than this are cut (with a warning); real ones are 1–2 deep.
const MAX_SOFTDEP_DEPTH: usize = 32;

/// Why a lookup or plan failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The alias itself is invalid.
    #[error(transparent)]
    Alias(#[from] AliasError),
    /// An index could not be read or is corrupt where the lookup needed it.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// The source that answered a lookup, in libkmod's order (first non-empty source wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `alias` lines in modprobe.d.
    ConfigAlias,
    /// An exact module name in `modules.dep`.
    ModuleName,
    /// An `install` command for exactly this name.
    InstallCommand,
    /// A `remove` command for exactly this name.
    RemoveCommand,
    /// Wildcard patterns of `modules.alias`.
    ModulesAlias,
    /// An exact name in `modules.builtin`.
    Builtin,
    /// Wildcard patterns of `modules.builtin.alias.bin`.
    BuiltinAlias,
}

/// A module as libkmod identifies it: its name and, if it was reached through an alias, the
/// alias (which selects extra `options` and makes the blacklist apply).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleRef {
    /// Module name (underscored).
    pub name: String,
    /// The alias it was reached through: the query for index aliases, the configured pattern
    /// for modprobe.d aliases.
    pub alias: Option<String>,
    /// Found through a builtin index.
    pub builtin: bool,
}

impl ModuleRef {
    fn named(name: &str) -> Self {
        ModuleRef {
            name: name.to_owned(),
            alias: None,
            builtin: false,
        }
    }
}

/// The result of a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// The winning source, `None` if nothing matched.
    pub source: Option<Source>,
    /// Every module of the winning source, deduplicated, in libkmod's order.
    pub modules: Vec<ModuleRef>,
}

/// One step of a load plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Load this module file with these options.
    Insert {
        /// Module name.
        module: String,
        /// Module file inside the module directory.
        path: PathBuf,
        /// Options joined as modprobe joins them (may be empty).
        options: String,
    },
    /// Built into the kernel: nothing to load, which counts as success.
    Builtin {
        /// Module name.
        module: String,
    },
    /// Run this modprobe.d `install` command instead of loading the module (the loader's
    /// rules for them: `docs/kmod-loader.md#install-commands`, [`crate::load::InstallPolicy`]).
    Install {
        /// Module name.
        module: String,
        /// The command, as configured (`$CMDLINE_OPTS` not yet replaced).
        command: String,
        /// Options, passed in `$CMDLINE_OPTS`.
        options: String,
    },
    /// Named by an alias or softdep but neither a module file nor builtin.
    NotFound {
        /// Module name.
        module: String,
    },
}

impl Step {
    /// The module this step is about.
    pub fn module(&self) -> &str {
        match self {
            Step::Insert { module, .. }
            | Step::Builtin { module }
            | Step::Install { module, .. }
            | Step::NotFound { module } => module,
        }
    }

    /// The line `modprobe --show-depends` prints for this step (`None` for [`Step::NotFound`],
    /// for which modprobe prints nothing). Like modprobe, non-empty options are followed by a
    /// space (its `module_options_concat` appends one before the absent extra options).
    pub fn show_depends_line(&self) -> Option<String> {
        let opts = |o: &String| {
            if o.is_empty() {
                String::new()
            } else {
                format!("{o} ")
            }
        };
        match self {
            Step::Insert { path, options, .. } => {
                Some(format!("insmod {} {}", path.display(), opts(options)))
            }
            Step::Builtin { module } => Some(format!("builtin {module}")),
            Step::Install {
                command, options, ..
            } => Some(format!("install {command} {}", opts(options))),
            Step::NotFound { .. } => None,
        }
    }
}

/// The load plan of one modalias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The alias as given.
    pub modalias: String,
    /// What the lookup found.
    pub lookup: Lookup,
    /// Modules skipped because they were reached through an alias and are blacklisted.
    pub blacklisted: Vec<String>,
    /// Steps in load order; each module at most once.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan in `modprobe --show-depends` form, one line per step.
    pub fn show_depends(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(Step::show_depends_line)
            .collect()
    }
}

/// Resolves modaliases against one module directory and configuration.
#[derive(Debug, Clone)]
pub struct Resolver {
    index: ModuleIndex,
    config: Config,
    options: ResolverOptions,
    stamp: Stamp,
}

fn dedup_push(list: &mut Vec<ModuleRef>, m: ModuleRef) {
    if !list.iter().any(|x| x.name == m.name) {
        list.push(m);
    }
}

impl Resolver {
    /// Opens the index for lookups in place ([`ModuleIndex::open`]) and loads the
    /// configuration.
    pub fn open(options: ResolverOptions) -> Result<Self, IndexError> {
        // Stamp first: a change during loading then shows up as stale on the next check.
        let stamp = Stamp::take(&options);
        let index = ModuleIndex::open(&options.module_dir)?;
        let config = Config::load(
            &options.config_dirs,
            Some(&options.module_dir),
            options.cmdline.as_deref(),
        );
        Ok(Resolver {
            index,
            config,
            options,
            stamp,
        })
    }

    /// Builds a resolver from parts already loaded (tests, embedding).
    pub fn from_parts(index: ModuleIndex, config: Config) -> Self {
        let options = ResolverOptions {
            module_dir: index.dir().to_owned(),
            config_dirs: Vec::new(),
            cmdline: None,
        };
        let stamp = Stamp::take(&options);
        Resolver {
            index,
            config,
            options,
            stamp,
        }
    }

    /// The module index.
    pub fn index(&self) -> &ModuleIndex {
        &self.index
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The options this resolver was loaded with.
    pub fn options(&self) -> &ResolverOptions {
        &self.options
    }

    /// Whether an index file, a configuration file or directory changed since loading (the
    /// command line is not watched: it does not change during a boot) (reloaded on change, not on a timer: `docs/kmod-loader.md#reloading-on-change`).
    pub fn is_stale(&self) -> bool {
        Stamp::take(&self.options) != self.stamp
    }

    /// Reloads if [`Self::is_stale`]; returns whether it reloaded. On error the current
    /// resolver is kept.
    pub fn reload_if_changed(&mut self) -> Result<bool, IndexError> {
        if !self.is_stale() {
            return Ok(false);
        }
        *self = Resolver::open(self.options.clone())?;
        info!(dir = %self.options.module_dir.display(), "module index reloaded");
        Ok(true)
    }

    /// libkmod's `kmod_module_new_from_lookup`: the first source with a match wins.
    pub fn lookup(&self, alias: &str) -> Result<Lookup, ResolveError> {
        let alias = normalize_alias(alias)?;
        let mut modules = Vec::new();
        let done = |source, modules: Vec<ModuleRef>| Lookup {
            source: Some(source),
            modules,
        };
        for a in &self.config.aliases {
            if fnmatch(a.pattern.as_bytes(), alias.as_bytes()) {
                dedup_push(
                    &mut modules,
                    ModuleRef {
                        name: a.module.clone(),
                        alias: Some(a.pattern.clone()),
                        builtin: false,
                    },
                );
            }
        }
        if !modules.is_empty() {
            return Ok(done(Source::ConfigAlias, modules));
        }
        if !alias.contains(':') && self.index.dep_entry(&alias)?.is_some() {
            return Ok(done(Source::ModuleName, vec![ModuleRef::named(&alias)]));
        }
        // (`symbol:` lookups in modules.symbols.bin are not needed for modaliases.)
        if self.config.install.iter().any(|c| c.module == alias) {
            return Ok(done(Source::InstallCommand, vec![ModuleRef::named(&alias)]));
        }
        if self.config.remove.iter().any(|c| c.module == alias) {
            return Ok(done(Source::RemoveCommand, vec![ModuleRef::named(&alias)]));
        }
        // Modules found through the alias itself (so blacklists and alias options apply).
        let through_alias = |found: Vec<String>, builtin: bool| -> Vec<ModuleRef> {
            found
                .into_iter()
                .map(|name| ModuleRef {
                    name,
                    alias: Some(alias.clone()),
                    builtin,
                })
                .collect()
        };
        let found = self.index.match_aliases(&alias)?;
        if !found.is_empty() {
            return Ok(done(Source::ModulesAlias, through_alias(found, false)));
        }
        if self.index.is_builtin(&alias)? {
            let mut m = ModuleRef::named(&alias);
            m.builtin = true;
            return Ok(done(Source::Builtin, vec![m]));
        }
        let found = self.index.match_builtin_aliases(&alias)?;
        if !found.is_empty() {
            return Ok(done(Source::BuiltinAlias, through_alias(found, true)));
        }
        Ok(Lookup::default())
    }

    /// The load plan of a modalias: for every module found, its softdep `pre` modules (each
    /// resolved by a full lookup, with their own dependencies), its dependencies in the order
    /// libkmod loads them (reverse of the `modules.dep` line), the module, its softdep `post`
    /// modules. Modules reached through an alias and blacklisted are skipped. Each module
    /// appears at most once.
    pub fn plan(&self, modalias: &str) -> Result<Plan, ResolveError> {
        let lookup = self.lookup(modalias)?;
        let mut plan = Plan {
            modalias: modalias.to_owned(),
            lookup: Lookup::default(),
            blacklisted: Vec::new(),
            steps: Vec::new(),
        };
        for m in &lookup.modules {
            if m.alias.is_some() && self.config.is_blacklisted(&m.name) {
                info!(modalias, module = %m.name, "blacklisted module not loaded");
                plan.blacklisted.push(m.name.clone());
                continue;
            }
            for step in self.probe_steps(m)? {
                if !plan.steps.iter().any(|s| s.module() == step.module()) {
                    plan.steps.push(step);
                }
            }
        }
        debug!(modalias, source = ?lookup.source, steps = plan.steps.len(), "planned");
        plan.lookup = lookup;
        Ok(plan)
    }

    /// The probe list of one found module (its softdeps, dependencies and itself, in load
    /// order), as [`Resolver::plan`] builds it before merging the modules of an alias.
    pub(crate) fn probe_steps(&self, m: &ModuleRef) -> Result<Vec<Step>, ResolveError> {
        let mut steps = Vec::new();
        let mut visited = HashSet::new();
        self.probe(m, None, &mut visited, &mut steps, 0)?;
        Ok(steps)
    }

    /// libkmod's `__kmod_module_get_probe_list`.
    fn probe(
        &self,
        m: &ModuleRef,
        path: Option<PathBuf>,
        visited: &mut HashSet<(String, Option<String>)>,
        out: &mut Vec<Step>,
        depth: usize,
    ) -> Result<(), ResolveError> {
        if !visited.insert((m.name.clone(), m.alias.clone())) {
            return Ok(());
        }
        let entry = self.index.dep_entry(&m.name)?;
        if let Some(entry) = &entry {
            for (name, dep_path) in entry.deps.iter().rev() {
                let dep = ModuleRef::named(name);
                self.fill_softdeps(&dep, Some(dep_path.clone()), visited, out, depth)?;
            }
        }
        let path = path.or(entry.map(|e| e.path));
        self.fill_softdeps(m, path, visited, out, depth)
    }

    /// libkmod's `__kmod_module_fill_softdep`: pre list, the module, post list.
    fn fill_softdeps(
        &self,
        m: &ModuleRef,
        path: Option<PathBuf>,
        visited: &mut HashSet<(String, Option<String>)>,
        out: &mut Vec<Step>,
        depth: usize,
    ) -> Result<(), ResolveError> {
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        if let Some(soft) = self.config.softdep_for(&m.name) {
            if depth >= MAX_SOFTDEP_DEPTH {
                warn!(module = %m.name, "softdep chain too deep; ignoring further softdeps");
            } else {
                for (names, list) in [(&soft.pre, &mut pre), (&soft.post, &mut post)] {
                    for name in names {
                        match self.lookup(name) {
                            Ok(found) => list.extend(found.modules),
                            // Softdep failures are ignored, as libkmod ignores them.
                            Err(e) => {
                                debug!(module = %m.name, softdep = %name, error = %e, "softdep lookup failed")
                            }
                        }
                    }
                }
            }
        }
        for p in &pre {
            self.probe(p, None, visited, out, depth + 1)?;
        }
        let has_softdeps = !pre.is_empty() || !post.is_empty();
        out.push(self.step(m, path, has_softdeps)?);
        for p in &post {
            self.probe(p, None, visited, out, depth + 1)?;
        }
        Ok(())
    }

    fn step(
        &self,
        m: &ModuleRef,
        path: Option<PathBuf>,
        has_softdeps: bool,
    ) -> Result<Step, ResolveError> {
        let options = self.config.options_for(&m.name, m.alias.as_deref());
        if let Some(command) = self
            .config
            .install_command_for(&m.name)
            .filter(|_| !has_softdeps)
        {
            debug!(module = %m.name, command, "install command instead of the module");
            return Ok(Step::Install {
                module: m.name.clone(),
                command: command.to_owned(),
                options,
            });
        }
        if let Some(path) = path {
            return Ok(Step::Insert {
                module: m.name.clone(),
                path,
                options,
            });
        }
        if m.builtin || self.index.is_builtin(&m.name)? {
            return Ok(Step::Builtin {
                module: m.name.clone(),
            });
        }
        debug!(module = %m.name, "module neither in modules.dep nor builtin");
        Ok(Step::NotFound {
            module: m.name.clone(),
        })
    }
}
