//! Wiring of a repository's release train (see `actors::pipeline::train`).

use std::sync::Arc;
use std::time::Duration;

use actors::pipeline::task::{PipelineSettings, RepoDeps};
use actors::pipeline::train::{
    ReleaseHook, Train, TrainArgs, TrainDeps, TrainMsg, TrainSettings, train_actor_name,
};
use ractor::ActorRef;
use supervisors::{ChildSpec, StartCtx};

use super::{PipelineWiring, RepoConfig, RouterAnnouncer, VcsCell, open_vcs};
use crate::config::Config;

/// When trains run, from the configuration and the tasks' settings.
pub fn train_settings(config: &Config, settings: &PipelineSettings) -> TrainSettings {
    let interval = config.release_interval();
    TrainSettings {
        interval,
        continuous: config.continuous_mode,
        test_timeout: settings.test_timeout,
        admin_chat: settings.admin_chat.clone(),
        check_every: interval.min(Duration::from_secs(60)),
        stall_retry: settings.stall_retry,
    }
}

/// Tells repository `repo`'s train that a task finished (the repository actor calls it).
pub fn kick(repo: &str) -> Arc<dyn Fn() + Send + Sync> {
    let name = train_actor_name(repo);
    Arc::new(move || {
        if let Some(train) = ractor::registry::where_is(name.clone()) {
            let _ = ActorRef::<TrainMsg>::from(train).cast(TrainMsg::Kick);
        }
    })
}

/// The train child of a repository's supervisor; `None` for a repository whose changes wait
/// for a person to merge them (`!manual` in `WATCHED_REPOS`).
pub(super) fn train_child(
    w: &PipelineWiring,
    settings: &Arc<PipelineSettings>,
    repo: &RepoConfig,
    vcs: &VcsCell,
    on_release: Option<ReleaseHook>,
) -> Option<ChildSpec> {
    if !repo.auto_merge {
        tracing::info!(repo = %repo.name, "no release train: changes wait for a manual merge");
        return None;
    }
    let train = Arc::new(train_settings(&w.config, settings));
    let (w, repo, vcs) = (w.clone(), repo.clone(), vcs.clone());
    let spec = ChildSpec::new("train", move |ctx: StartCtx| {
        let (w, repo, vcs, train, on_release) = (
            w.clone(),
            repo.clone(),
            vcs.clone(),
            train.clone(),
            on_release.clone(),
        );
        async move {
            let vcs = open_vcs(&vcs, &repo).await?;
            let deps = TrainDeps {
                repo: Arc::new(RepoDeps::new(
                    repo.name.clone(),
                    vcs,
                    repo.test_cmd.clone(),
                    RepoDeps::phase_locks(),
                )),
                tests: w.tests.clone(),
                store: w.store.clone(),
                announcer: Some(Arc::new(RouterAnnouncer)),
                settings: train,
                on_release,
            };
            let args = TrainArgs {
                deps,
                stats: Some(ctx.stats.clone()),
            };
            ctx.spawn_named(Some(train_actor_name(&repo.name)), Train, args)
                .await
                .map(Some)
        }
    })
    .kind("train");
    Some(spec)
}
