//! `borg release [--repo NAME]`: start a repository's release train now, through the running
//! daemon's control socket (the train is an actor of the running pipeline).

use std::process::ExitCode;

use serde_json::json;

use crate::config::Config;
use crate::control;

pub async fn release(config: &Config, repo: Option<String>) -> ExitCode {
    let Some(answer) =
        control::request(&config.data_dir, &json!({"cmd": "release", "repo": repo})).await
    else {
        eprintln!(
            "borg: no borg daemon is answering in {}; start it with `borg run`",
            config.data_dir.display()
        );
        return ExitCode::FAILURE;
    };
    if answer["ok"] == json!(true) {
        println!(
            "Release #{} of {} started; the digest goes to PIPELINE_ADMIN_CHAT when it is done \
             (`borg tasks` shows the tasks merged).",
            answer["train"],
            answer["repo"].as_str().unwrap_or("?")
        );
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "borg: {}",
            answer["error"].as_str().unwrap_or("unknown error")
        );
        ExitCode::FAILURE
    }
}
