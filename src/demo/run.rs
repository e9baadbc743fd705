//! `borg demo`: one task through every phase, for a newcomer with no API key.
//!
//! It makes a sample repository, starts a scripted stand-in for the Anthropic API on
//! 127.0.0.1 (clearly labelled: no real model is involved), starts the real daemon (this
//! binary, `borg run`) on the sample with `ANTHROPIC_BASE_URL` pointing at the stand-in,
//! creates a task through the control socket like `borg task add`, prints every phase change
//! as it happens, and ends by showing the task's branch. The agents are the real `claude`
//! CLI, in real containers when a Docker engine and the agent image are there, else plain
//! processes (said loudly).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::model::ScriptedModel;

/// How long the demo waits for its task before giving up.
const DEMO_LIMIT: Duration = Duration::from_secs(600);

pub async fn run(workdir: Option<PathBuf>, no_docker: bool) -> ExitCode {
    match demo(workdir, no_docker).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("borg demo: {why}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(workdir: Option<PathBuf>, no_docker: bool) -> Result<(), String> {
    // Kept afterwards (the path is printed), so the branch and logs can be looked at.
    let root = match workdir {
        Some(dir) => dir,
        None => tempfile_dir()?,
    };
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    println!("borg demo in {}", root.display());
    println!(
        "  NOTE: the model is SCRIPTED. No request leaves this machine; the answers are canned."
    );

    let repo = super::create_sample_repo(&root.join("sample"))
        .map_err(|e| format!("cannot create the sample repository: {e}"))?;
    println!(
        "[1/5] sample repository: {} (test command: {})",
        repo.display(),
        super::SAMPLE_TEST_COMMAND
    );

    let model = ScriptedModel::start(super::demo_script())
        .await
        .map_err(|e| format!("cannot start the scripted model: {e}"))?;
    println!("[2/5] scripted model listening on {}", model.base_url());

    let sandbox = choose_sandbox(no_docker).await;
    let in_containers = sandbox.starts_with("in hardened");
    // In containers the agent image's own CLI runs; on the host, this machine's.
    let claude = if in_containers {
        find_claude().unwrap_or_else(|_| PathBuf::from("claude"))
    } else {
        find_claude()?
    };
    if in_containers {
        println!("[3/5] agents: the real claude CLI of the agent image, {sandbox}");
    } else {
        println!(
            "[3/5] agents: the real claude CLI ({}), {sandbox}",
            claude.display()
        );
    }

    let data = root.join("data");
    let mut daemon = start_daemon(&root, &data, &repo, &claude, &model, &sandbox).await?;
    let result = follow_task(&data, &mut daemon).await;
    stop(&mut daemon).await;
    let task = result?;
    println!(
        "[5/5] task #{} is {}",
        task["id"],
        task["status"].as_str().unwrap_or("?")
    );
    let branch = task["branch"].as_str().unwrap_or("borg/task-1");
    let log = git(
        &repo,
        &["log", "--format=  %h %s", &format!("main..{branch}")],
    );
    println!("\nThe branch {branch} in {}:\n{log}", repo.display());
    let stat = git(&repo, &["diff", "--stat", &format!("main...{branch}")]);
    println!("{stat}");
    println!("Logs of the daemon: {}", root.join("daemon.log").display());
    if task["status"] == "done" {
        Ok(())
    } else {
        Err(format!(
            "the task ended {}: {}",
            task["status"], task["reason"]
        ))
    }
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("borg-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `CLAUDE_BIN`, else `claude` on PATH, else `node_modules/.bin/claude` here.
fn find_claude() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CLAUDE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("claude"))
            .find(|p| p.is_file())
    });
    let local = PathBuf::from("node_modules/.bin/claude");
    on_path
        .or_else(|| {
            local
                .is_file()
                .then(|| local.canonicalize().unwrap_or(local))
        })
        .ok_or_else(|| {
            "the claude CLI was not found: install it with `npm install -g \
             @anthropic-ai/claude-code` or set CLAUDE_BIN"
                .to_owned()
        })
}

/// Docker when an engine answers and the agent image exists; else processes.
/// Docker when an engine answers and the agent image is there or can be built now (a few
/// minutes the first time); else processes, saying why.
async fn choose_sandbox(no_docker: bool) -> String {
    if no_docker {
        return "as plain processes (--no-docker)".into();
    }
    let image = std::env::var("AGENT_IMAGE").unwrap_or_else(|_| "borg-agent:latest".into());
    let docker = match crate::docker::connect().await {
        Ok(docker) => docker,
        Err(e) => return format!("as plain processes: no Docker engine ({e})"),
    };
    if docker.inspect_image(&image).await.is_ok() {
        return format!("in hardened containers of {image}");
    }
    println!("      the agent image {image} is missing: building it (minutes the first time)");
    let mut progress = |line: &str| {
        if line.starts_with("Step ") {
            println!("      {line}");
        }
    };
    let built = crate::image_cli::build_embedded(&docker, &image, &mut progress);
    match built.await {
        Ok(()) => format!("in hardened containers of {image}"),
        Err(e) => format!(
            "as plain processes: the agent image {image} did not build ({e}); see \
             `borg image build`"
        ),
    }
}

async fn start_daemon(
    root: &Path,
    data: &Path,
    repo: &Path,
    claude: &Path,
    model: &ScriptedModel,
    sandbox: &str,
) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let log = std::fs::File::create(root.join("daemon.log")).map_err(|e| e.to_string())?;
    let kind = if sandbox.starts_with("in hardened") {
        "docker"
    } else {
        "process"
    };
    // A port of its own, so the demo runs beside a borg already serving the default one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port for the dashboard: {e}"))?;
    println!("      dashboard: http://127.0.0.1:{port}/ (while the demo runs)");
    let child = Command::new(exe)
        .args(["--dir", &root.display().to_string(), "run"])
        .env("WEB_BIND", "127.0.0.1")
        .env("WEB_PORT", port.to_string())
        .env_remove("WEB_TOKEN")
        .env("DATA_DIR", data)
        .env("PIPELINE_REPO", repo)
        .env("PIPELINE_TEST_CMD", super::SAMPLE_TEST_COMMAND)
        .env("CLAUDE_BIN", claude)
        .env("CLAUDE_MODEL", "claude-sonnet-4-6")
        .env("AGENT_SANDBOX", kind)
        .env("AGENT_NETWORK", "host")
        .env("AGENT_IDLE_TIMEOUT_S", "120")
        .env("ANTHROPIC_BASE_URL", model.base_url())
        .env("ANTHROPIC_API_KEY", "scripted-demo-key")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("DISCORD_TOKEN")
        .env_remove("WATCHED_REPOS")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    println!("[4/5] daemon started (pid {})", child.id().unwrap_or(0));
    Ok(child)
}

async fn ask(data: &Path, request: Value) -> Option<Value> {
    crate::control::request(data, &request)
        .await
        .filter(|a| a["ok"] == json!(true))
}

/// Creates the demo task and prints its phase changes until it ends.
async fn follow_task(data: &Path, daemon: &mut Child) -> Result<Value, String> {
    let started = Instant::now();
    let add = json!({"cmd": "task_add", "title": super::DEMO_TASK_TITLE,
        "description": super::DEMO_TASK_DESCRIPTION});
    let created = loop {
        alive(daemon)?;
        match crate::control::request(data, &add).await {
            Some(answer) if answer["ok"] == json!(true) => break answer,
            Some(answer) => {
                return Err(format!("the daemon refused the task: {}", answer["error"]));
            }
            None => {}
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the daemon did not start within 30 s; see daemon.log".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = created["task"]["id"].as_u64().unwrap_or(1);
    println!("      task #{id} created: {}", super::DEMO_TASK_TITLE);
    let mut shown = 0;
    while started.elapsed() < DEMO_LIMIT {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alive(daemon)?;
        let Some(answer) = ask(data, json!({"cmd": "task", "id": id})).await else {
            continue;
        };
        let task = &answer["task"];
        let history = task["history"].as_array().cloned().unwrap_or_default();
        for h in history.iter().skip(shown) {
            println!(
                "      {:>5.1}s  {} → {}: {}",
                started.elapsed().as_secs_f64(),
                h["from"].as_str().unwrap_or("?"),
                h["to"].as_str().unwrap_or("?"),
                h["note"].as_str().unwrap_or("")
            );
        }
        shown = history.len();
        if matches!(task["status"].as_str(), Some("done" | "failed" | "blocked")) {
            let mut summary = task.clone();
            summary["id"] = json!(id);
            return Ok(summary);
        }
    }
    Err(format!(
        "the task did not finish within {} s",
        DEMO_LIMIT.as_secs()
    ))
}

/// An error when the daemon has exited.
fn alive(daemon: &mut Child) -> Result<(), String> {
    match daemon.try_wait() {
        Ok(Some(status)) => Err(format!("the daemon exited ({status}); see daemon.log")),
        _ => Ok(()),
    }
}

/// SIGTERM, then wait for the orderly shutdown.
async fn stop(daemon: &mut Child) {
    if let Some(pid) = daemon.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .is_err()
    {
        let _ = daemon.kill().await;
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(repo)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
