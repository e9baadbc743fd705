//! The checks of `borg doctor` that talk to something: the Docker engine and the agent image,
//! and the chat platforms (one harmless "who am I" call each, with a short timeout). Tokens
//! never appear in what is printed, even inside a library's error text.

use std::time::Duration;

use bollard::Docker;
use serenity::http::HttpError;
use teloxide::prelude::Requester;
use teloxide::{ApiError, RequestError};

use super::Check;
use super::checks::find_program;
use crate::config::Config;
use crate::discord::DiscordConfig;
use crate::docker::{BuildContext, host_extra_ca_certs, image_status};
use crate::telegram::TelegramConfig;

/// How long one call may take before the service counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine (`DOCKER_HOST`, else the local socket) and the agent image (`AGENT_IMAGE`).
pub(super) async fn docker(config: &Config) -> Vec<Check> {
    const ENGINE: &str = "Docker engine";
    const IMAGE: &str = "agent image";
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let fix = "start dockerd (Debian: `apt-get install docker.io`, then `systemctl start \
               docker`), point DOCKER_HOST at a running engine, or set AGENT_SANDBOX=process";
    let connected = match Docker::connect_with_defaults() {
        Ok(docker) => tokio::time::timeout(CALL_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| format!("no answer within {} s", CALL_TIMEOUT.as_secs()))
            .and_then(|r| r.map_err(|e| e.to_string())),
        Err(e) => Err(e.to_string()),
    };
    let docker = match connected {
        Ok(docker) => docker,
        Err(why) => {
            return vec![
                Check::fail(ENGINE, format!("cannot connect to {host} ({why})"), fix),
                Check::skip(IMAGE, "not checked: no Docker engine"),
            ];
        }
    };
    let version = match tokio::time::timeout(CALL_TIMEOUT, docker.version()).await {
        Ok(Ok(v)) => v.version.unwrap_or_else(|| "?".into()),
        _ => "?".into(),
    };
    let engine = Check::ok(ENGINE, format!("{host} (engine {version})"));
    let tag = &config.agent_image;
    let build = "run `borg image build` (minutes the first time)";
    let image = match image_status(&docker, tag).await {
        Ok(Some(image)) => {
            let current =
                BuildContext::embedded(&host_extra_ca_certs()).map(|c| c.hash().to_owned());
            let built = image.created.as_deref().unwrap_or("at an unknown time");
            match (&image.context_hash, current) {
                (Some(hash), Ok(now)) if *hash != now => Check::warn(
                    IMAGE,
                    format!("{tag} was built from an older container/ ({built})"),
                    build,
                ),
                _ => Check::ok(IMAGE, format!("{tag} (built {built})")),
            }
        }
        Ok(None) => Check::fail(IMAGE, format!("{tag} is not built"), build),
        Err(e) => Check::fail(IMAGE, format!("cannot inspect {tag}: {e}"), build),
    };
    vec![engine, image]
}

/// Each configured chat platform; one skipped line when none is.
pub(super) async fn chats(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(token) = &config.telegram_bot_token {
        out.push(telegram(token, config.telegram_api_url.as_deref()).await);
    }
    if let (true, Some(token)) = (config.discord_enabled, &config.discord_token) {
        out.push(discord(token, config.discord_api_url.as_deref()).await);
    }
    if config.whatsapp_enabled {
        out.push(whatsapp(config));
    }
    if out.is_empty() {
        out.push(Check::skip(
            "chat",
            "no platform configured (TELEGRAM_BOT_TOKEN, DISCORD_ENABLED, WHATSAPP_ENABLED)",
        ));
    }
    out
}

fn redact(text: String, secret: &str) -> String {
    if secret.is_empty() {
        text
    } else {
        text.replace(secret, "<token>")
    }
}

async fn telegram(token: &str, api_url: Option<&str>) -> Check {
    const NAME: &str = "Telegram";
    let mut settings = TelegramConfig::new(token);
    if let Some(url) = api_url {
        settings = settings.with_api_url(url);
    }
    let bot = match settings.bot() {
        Ok(bot) => bot,
        Err(e) => return Check::fail(NAME, e.to_string(), "correct TELEGRAM_API_URL"),
    };
    let api = api_url.unwrap_or("https://api.telegram.org");
    let unreachable = "check the network (and TELEGRAM_API_URL, if set)";
    match tokio::time::timeout(CALL_TIMEOUT, bot.get_me()).await {
        Ok(Ok(me)) => Check::ok(
            NAME,
            format!(
                "token accepted by {api}: @{}",
                me.user.username.as_deref().unwrap_or("?")
            ),
        ),
        Ok(Err(RequestError::Api(ApiError::InvalidToken))) => Check::fail(
            NAME,
            format!("{api} refused the bot token (getMe: Unauthorized)"),
            "copy the token from @BotFather (/mybots → API Token) into TELEGRAM_BOT_TOKEN",
        ),
        Ok(Err(e)) => Check::fail(
            NAME,
            redact(format!("getMe at {api} failed: {e}"), token),
            unreachable,
        ),
        Err(_) => Check::fail(
            NAME,
            format!("no answer from {api} within {} s", CALL_TIMEOUT.as_secs()),
            unreachable,
        ),
    }
}

async fn discord(token: &str, api_url: Option<&str>) -> Check {
    const NAME: &str = "Discord";
    let mut settings = DiscordConfig::new(token);
    if let Some(url) = api_url {
        settings = settings.with_api_url(url);
    }
    let http = match settings.http() {
        Ok(http) => http,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                "correct DISCORD_TOKEN / DISCORD_API_URL",
            );
        }
    };
    let api = api_url.unwrap_or("https://discord.com");
    let unreachable = "check the network (and DISCORD_API_URL, if set)";
    match tokio::time::timeout(CALL_TIMEOUT, http.get_current_user()).await {
        Ok(Ok(me)) => Check::ok(NAME, format!("token accepted by {api}: {}", me.name)),
        Ok(Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(answer))))
            if answer.status_code.as_u16() == 401 =>
        {
            Check::fail(
                NAME,
                format!("{api} refused the bot token (GET /users/@me: 401 Unauthorized)"),
                "copy the bot token from the Developer Portal (Bot → Reset Token) into \
                 DISCORD_TOKEN",
            )
        }
        Ok(Err(e)) => Check::fail(
            NAME,
            redact(format!("GET /users/@me at {api} failed: {e}"), token),
            unreachable,
        ),
        Err(_) => Check::fail(
            NAME,
            format!("no answer from {api} within {} s", CALL_TIMEOUT.as_secs()),
            unreachable,
        ),
    }
}

/// The bridge's program: `WHATSAPP_BRIDGE_CMD`'s first word, else `WHATSAPP_NODE`.
fn whatsapp(config: &Config) -> Check {
    const NAME: &str = "WhatsApp bridge";
    let (program, var) = match &config.whatsapp_bridge_cmd {
        Some(cmd) => (
            cmd.split_whitespace().next().unwrap_or_default().into(),
            "WHATSAPP_BRIDGE_CMD",
        ),
        None => (config.whatsapp_node.clone(), "WHATSAPP_NODE"),
    };
    match find_program(&program, None) {
        Some(found) => Check::ok(NAME, format!("{var}: {}", found.display())),
        None => Check::fail(
            NAME,
            format!(
                "{var}={} is not an executable here or on PATH",
                program.display()
            ),
            "install Node.js 20 or newer (and npm), or set WHATSAPP_NODE to it",
        ),
    }
}
