//! Load plans from the resolver, in the shape the [`Loader`](super::Loader) runs them.

use std::collections::HashSet;

use super::actor::PlanSource;
use super::scheduler::{LoadStep, ModulePlan};
use crate::resolve::{ResolveError, Resolver, Step};

impl Resolver {
    /// The plans of `modalias` for the loader: one [`ModulePlan`] per module the lookup found
    /// (modules blacklisted through an alias left out), each in libkmod's order — softdep pre,
    /// dependencies, the module, softdep post. Steps that are neither the module nor one of its
    /// `modules.dep` dependencies come from softdeps and are marked `soft` (their failure does
    /// not stop the plan). Refused `install` commands and names that are neither a file nor
    /// builtin are left out (the resolver has logged them).
    pub fn module_plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, ResolveError> {
        let lookup = self.lookup(modalias)?;
        let mut plans = Vec::new();
        for found in &lookup.modules {
            if found.alias.is_some() && self.config().is_blacklisted(&found.name) {
                continue;
            }
            let mut hard: HashSet<String> = HashSet::from([found.name.clone()]);
            if let Some(entry) = self.index().dep_entry(&found.name)? {
                hard.extend(entry.deps.into_iter().map(|(name, _)| name));
            }
            let steps = self
                .probe_steps(found)?
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
                            path: Some(path),
                            options,
                            soft,
                        }),
                        Step::Builtin { module } => Some(LoadStep {
                            module,
                            path: None,
                            options: String::new(),
                            soft,
                        }),
                        Step::InstallRefused { .. } | Step::NotFound { .. } => None,
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
    fn plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, String> {
        self.module_plans(modalias).map_err(|err| err.to_string())
    }

    fn reload_if_changed(&mut self) -> Result<bool, String> {
        Resolver::reload_if_changed(self).map_err(|err| err.to_string())
    }
}
