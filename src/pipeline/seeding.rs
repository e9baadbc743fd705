//! Wiring of a repository's seeder (auto-seeding): not built yet.

use std::sync::Arc;

use actors::pipeline::task::PipelineSettings;
use supervisors::ChildSpec;

use super::{PipelineWiring, RepoConfig, VcsCell};

/// The seeder child of a repository's supervisor, when seeding is on.
pub(crate) fn seeder_child(
    _w: &PipelineWiring,
    _settings: &Arc<PipelineSettings>,
    _repo: &RepoConfig,
    _vcs: &VcsCell,
) -> Option<ChildSpec> {
    None
}
