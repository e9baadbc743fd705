//! Leaving the running binary for another: the new one after a self-update, or the previous
//! one when the new one cannot start; and what the next daemon says about how it came to run.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;

use super::{FALLBACK_REASON_VAR, FALLBACK_VAR, Ready, UPDATED_FROM_VAR};
use crate::config::Config;

/// Replaces this process with `ready.binary` (same arguments and environment, plus
/// [`FALLBACK_VAR`] and [`UPDATED_FROM_VAR`]); if that fails, with the previous binary.
/// Returns only if both fail, with what went wrong.
pub fn restart_into(ready: &Ready) -> String {
    let err = std::process::Command::new(&ready.binary)
        .args(std::env::args_os().skip(1))
        .env(FALLBACK_VAR, &ready.previous)
        .env(UPDATED_FROM_VAR, running_version())
        .env_remove(FALLBACK_REASON_VAR)
        .exec();
    let why = format!(
        "cannot start the new binary {}: {err}",
        ready.binary.display()
    );
    tracing::error!("{why}; starting the previous one");
    let again = fall_back(&ready.previous, &why);
    format!(
        "{why}; and the previous binary {}: {again}",
        ready.previous.display()
    )
}

/// Replaces this process with `previous` (same arguments; [`FALLBACK_VAR`] removed,
/// [`FALLBACK_REASON_VAR`] set to `why`). Returns only on failure.
pub fn fall_back(previous: &Path, why: &str) -> std::io::Error {
    std::process::Command::new(previous)
        .args(std::env::args_os().skip(1))
        .env_remove(FALLBACK_VAR)
        .env(FALLBACK_REASON_VAR, why)
        .exec()
}

/// The running version, with the commit when the binary is a self-update's `borg-<commit>`.
pub fn running_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let commit = std::env::current_exe().ok().and_then(|exe| {
        let name = exe.file_name()?.to_str()?.strip_prefix("borg-")?.to_owned();
        name.chars().all(|c| c.is_ascii_hexdigit()).then_some(name)
    });
    match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_owned(),
    }
}

/// Logs how this daemon came to run: after a self-update, or as the fallback from one; and
/// tells the admin chat.
pub fn report_start(config: &Config) {
    let var = |name| std::env::var_os(name).map(|v: OsString| v.to_string_lossy().into_owned());
    if let Some(why) = var(FALLBACK_REASON_VAR) {
        let text = format!(
            "borg {} started as the fallback of a self-update: {why}",
            running_version()
        );
        tracing::error!("{text}");
        announce(config, text);
    } else if let Some(from) = var(UPDATED_FROM_VAR) {
        let text = format!("borg updated from {from} to {}", running_version());
        tracing::info!("{text}");
        announce(config, text);
    }
}

/// Sends `text` to `PIPELINE_ADMIN_CHAT` through the chat router, if both exist.
pub fn announce(config: &Config, text: String) {
    use actors::chat::{ChatId, router::RouterMsg};
    let Some(chat) = &config.pipeline_admin_chat else {
        return;
    };
    match ractor::registry::where_is(crate::wiring::ROUTER_NAME) {
        Some(router) => {
            let router: ractor::ActorRef<RouterMsg> = router.into();
            let _ = router.cast(RouterMsg::Announce(ChatId(chat.clone()), text));
        }
        None => tracing::info!(chat, "no chat is connected; self-update report: {text}"),
    }
}
