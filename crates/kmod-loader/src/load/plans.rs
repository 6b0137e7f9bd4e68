//! Load plans from the resolver, in the shape the [`Loader`](super::Loader) runs them.

use std::collections::HashSet;

use super::actor::PlanSource;
use super::scheduler::{LoadAction, LoadStep, ModulePlan};
use crate::error::IndexError;
use crate::resolve::{ResolveError, Resolver, Step};

impl Resolver {
    /// The plans of `modalias` for the loader, as udev's `kmod load` makes them: one
    /// [`ModulePlan`] per module the lookup found, in the lookup's order (the loader runs them
    /// in this order, one after another), blacklisted modules left out whether they were
    /// found through an alias or by name (udev's `KMOD_PROBE_APPLY_BLACKLIST`; modprobe
    /// applies the blacklist to aliases only, see [`Resolver::plan`]). Each plan is in
    /// libkmod's order — softdep pre, dependencies, the module, softdep post. Steps that are
    /// neither the module nor one of its `modules.dep` dependencies come from softdeps and are
    /// marked `soft` (their failure does not stop the plan). Names that are neither a file nor
    /// builtin are left out (the resolver has logged them).
    pub fn module_plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, ResolveError> {
        let lookup = self.lookup(modalias)?;
        let mut plans = Vec::new();
        for found in &lookup.modules {
            if self.config().is_blacklisted(&found.name) {
                tracing::debug!(modalias, module = %found.name, "blacklisted module not loaded");
                continue;
            }
            let mut hard: HashSet<String> = HashSet::from([found.name.clone()]);
            if let Some(entry) = self.index().dep_entry(&found.name)? {
                hard.extend(entry.deps.into_iter().map(|(name, _)| name));
            }
            let probe = self.probe_steps(found)?;
            let mut builtin = HashSet::new();
            for step in &probe {
                if let Step::Install { module, .. } = step
                    && self.index().is_builtin(module)?
                {
                    builtin.insert(module.clone());
                }
            }
            let steps = probe
                .into_iter()
                .filter_map(|step| {
                    let soft = !hard.contains(step.module());
                    match step {
                        Step::Insert {
                            module,
                            path,
                            options,
                        } => Some(LoadStep {
                            module,
                            action: LoadAction::Insert(path),
                            options,
                            soft,
                        }),
                        Step::Builtin { module } => Some(LoadStep {
                            module,
                            action: LoadAction::Builtin,
                            options: String::new(),
                            soft,
                        }),
                        // Built in: already in the kernel, so libkmod never runs its command
                        // (`modprobe --show-depends` ignores what is loaded and prints it).
                        Step::Install { module, .. } if builtin.contains(&module) => {
                            Some(LoadStep {
                                module,
                                action: LoadAction::Builtin,
                                options: String::new(),
                                soft,
                            })
                        }
                        Step::Install {
                            module,
                            command,
                            options,
                        } => Some(LoadStep {
                            module,
                            action: LoadAction::Install(command),
                            options,
                            soft,
                        }),
                        Step::NotFound { .. } => None,
                    }
                })
                .collect();
            plans.push(ModulePlan {
                target: found.name.clone(),
                steps,
            });
        }
        Ok(plans)
    }
}

impl PlanSource for Resolver {
    fn plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, ResolveError> {
        self.module_plans(modalias)
    }

    fn reload_if_changed(&mut self) -> Result<bool, IndexError> {
        Resolver::reload_if_changed(self)
    }
}
