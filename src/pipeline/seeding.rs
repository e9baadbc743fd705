//! Wiring of a repository's seeder (auto-seeding, `AUTO_SEED`): the last child of the
//! repository's supervisor, so a restart of its siblings restarts it too (it keeps its
//! cooldown in its snapshot), while its own failures touch nothing else. See
//! [`actors::pipeline::seed`].

use std::sync::Arc;

use actors::pipeline::seed::{self, SeedDeps, SeedSettings};
use actors::pipeline::task::PipelineSettings;
use actors::slots::SlotsMsg;
use ractor::ActorRef;
use supervisors::{ChildSpec, StartError};

use super::{PipelineWiring, RepoConfig, VcsCell};
use crate::wiring::SLOTS_NAME;

/// The seeder child of a repository's supervisor, when seeding is on: every hour, or every
/// minute in `CONTINUOUS_MODE`.
pub(crate) fn seeder_child(
    w: &PipelineWiring,
    settings: &Arc<PipelineSettings>,
    repo: &RepoConfig,
    vcs: &VcsCell,
) -> Option<ChildSpec> {
    if !w.config.auto_seed {
        return None;
    }
    let seed_settings = SeedSettings::for_mode(w.config.continuous_mode);
    let (w, settings, repo_config, vcs) = (w.clone(), settings.clone(), repo.clone(), vcs.clone());
    Some(seed::child_spec(&repo.name, seed_settings, move || {
        let (w, settings, repo, vcs) = (
            w.clone(),
            settings.clone(),
            repo_config.clone(),
            vcs.clone(),
        );
        async move {
            let vcs = super::open_vcs(&vcs, &repo).await?;
            let slots = ractor::registry::where_is(SLOTS_NAME)
                .ok_or_else(|| StartError("agent slots are not running".into()))?;
            Ok(SeedDeps {
                repo: repo.name.clone(),
                vcs,
                pipeline: settings,
                runner: w.runner.clone(),
                slots: ActorRef::<SlotsMsg>::from(slots),
                store: w.store.clone(),
            })
        }
    }))
}
