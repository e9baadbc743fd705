//! `borg task add`, `borg task show` and `borg tasks`: the pipeline's tasks from the command
//! line, through the running daemon's control socket (tasks are created by the running
//! pipeline, which owns their ids and actors).

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::config::Config;
use crate::control;

async fn ask(config: &Config, request: Value) -> Result<Value, String> {
    let answer = control::request(&config.data_dir, &request)
        .await
        .ok_or_else(|| {
            format!(
                "no borg daemon is answering in {}; start it with `borg run`",
                config.data_dir.display()
            )
        })?;
    if answer["ok"] == json!(true) {
        Ok(answer)
    } else {
        Err(answer["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_owned())
    }
}

fn fail(why: String) -> ExitCode {
    eprintln!("borg: {why}");
    ExitCode::FAILURE
}

pub async fn add(
    config: &Config,
    repo: Option<String>,
    title: String,
    description: String,
) -> ExitCode {
    let request =
        json!({"cmd": "task_add", "repo": repo, "title": title, "description": description});
    match ask(config, request).await {
        Ok(answer) => {
            let task = &answer["task"];
            println!(
                "Task #{} created in {}: {}",
                task["id"],
                task["repo"].as_str().unwrap_or("?"),
                task["title"].as_str().unwrap_or("?")
            );
            ExitCode::SUCCESS
        }
        Err(why) => fail(why),
    }
}

pub async fn list(config: &Config, as_json: bool) -> ExitCode {
    match ask(config, json!({"cmd": "tasks"})).await {
        Ok(answer) if as_json => {
            println!("{}", answer["tasks"]);
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            let tasks = answer["tasks"].as_array().cloned().unwrap_or_default();
            if tasks.is_empty() {
                println!("No tasks. Add one with: borg task add \"title\"");
            }
            for t in tasks {
                let reason = t["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .or_else(|| t["waiting"].as_str().map(|w| format!(" (waiting: {w})")))
                    .unwrap_or_default();
                println!(
                    "#{:<4} {:<10} {:<8} {}{}",
                    t["id"],
                    t["repo"].as_str().unwrap_or("?"),
                    t["status"].as_str().unwrap_or("?"),
                    t["title"].as_str().unwrap_or("?"),
                    reason
                );
            }
            ExitCode::SUCCESS
        }
        Err(why) => fail(why),
    }
}

pub async fn show(config: &Config, id: u64, as_json: bool) -> ExitCode {
    match ask(config, json!({"cmd": "task", "id": id})).await {
        Ok(answer) if as_json => {
            println!("{}", answer["task"]);
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            let t = &answer["task"];
            println!("Task #{id}: {}", t["task"]["title"].as_str().unwrap_or("?"));
            println!(
                "  repository  {}",
                t["task"]["repo"].as_str().unwrap_or("?")
            );
            println!("  status      {}", t["status"].as_str().unwrap_or("?"));
            println!("  branch      {}", t["branch"].as_str().unwrap_or("-"));
            println!("  attempts    {}", t["impl_attempts"]);
            if let Some(reason) = t["reason"].as_str() {
                println!("  reason      {reason}");
            }
            if let Some(waiting) = t["waiting"].as_str() {
                println!("  waiting     {waiting}");
            }
            println!("  history:");
            for h in t["history"].as_array().cloned().unwrap_or_default() {
                println!(
                    "    {} → {}  {}",
                    h["from"].as_str().unwrap_or("?"),
                    h["to"].as_str().unwrap_or("?"),
                    h["note"].as_str().unwrap_or("")
                );
            }
            ExitCode::SUCCESS
        }
        Err(why) => fail(why),
    }
}
