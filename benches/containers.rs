//! Container start to agent running: how long from "start a run" to the first line of output
//! of a trivial command (`echo ready`) in the agent image, with the hardening every borg
//! container gets, through bollard (`borg::docker::container::launch`, as the runners do it:
//! create, attach, start) against the `docker run` CLI with the same flags. Rounds interleave
//! the two (alternating which goes first) so machine noise hits both alike; removal comes
//! after the clock stops in both. Prints the medians and the ratio bollard/CLI (target ≤ 1.0).
//!
//! Run: `cargo bench --bench containers` (needs a Docker engine; builds the agent image from
//! `container/` when it is missing or stale). `ROUNDS=20` for more rounds.

#[path = "../tests/support/docker.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use borg::docker::DockerConfig;
use borg::docker::container::{Cleanup, ContainerSpec, launch, new_run_id};
use borg::docker::ownership::RunAs;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

const OWNER: &str = "bench-containers";

#[tokio::main]
async fn main() {
    let Some(docker) = support::engine().await else {
        return;
    };
    let Some(image) = support::agent_image(&docker).await else {
        return;
    };
    if std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_err()
    {
        support::skip("the docker CLI is not installed (apt-get install docker.io)");
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
        .max(1);
    let config = DockerConfig {
        image: image.clone(),
        instance: OWNER.to_owned(),
        ..DockerConfig::new(Vec::new())
    };
    let run_as = RunAs::for_this_process().expect("borg's user");

    // One of each first, untimed: page cache, the engine's image metadata.
    bollard_round(&docker, &config, run_as).await;
    cli_round(&config, run_as).await;
    let (mut bollard, mut cli) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            bollard.push(bollard_round(&docker, &config, run_as).await);
            cli.push(cli_round(&config, run_as).await);
        } else {
            cli.push(cli_round(&config, run_as).await);
            bollard.push(bollard_round(&docker, &config, run_as).await);
        }
    }
    let (b, c) = (median(&mut bollard), median(&mut cli));
    println!(
        "containers: start → first output line of `echo ready` in {image}, hardened, {rounds} interleaved rounds"
    );
    println!("  bollard (create+attach+start)  median {:>7.1} ms", ms(b));
    println!("  docker run CLI                 median {:>7.1} ms", ms(c));
    println!(
        "  ratio bollard/CLI              {:.2} (target ≤ 1.0)",
        b.as_secs_f64() / c.as_secs_f64()
    );
    let left = borg::docker::remove_instance_orphans(&docker, &config)
        .await
        .unwrap_or(0);
    if left > 0 {
        eprintln!("removed {left} benchmark containers that were left");
    }
}

/// One run through borg's own launch path; the time until the first stdout line.
async fn bollard_round(docker: &Docker, config: &DockerConfig, run_as: RunAs) -> Duration {
    let spec = ContainerSpec {
        run_id: new_run_id(),
        owner: OWNER.to_owned(),
        cmd: vec!["echo".into(), "ready".into()],
        env: Vec::new(),
        mounts: Vec::new(),
        run_as,
    };
    let started = Instant::now();
    let mut cleanup = Cleanup::new(docker, || {});
    let mut launched = launch(docker, config, &spec, &mut cleanup)
        .await
        .expect("launch");
    let mut seen = Vec::new();
    while let Some(item) = launched.output.next().await {
        if let Ok(LogOutput::StdOut { message }) = item {
            seen.extend_from_slice(&message);
            if seen.contains(&b'\n') {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(seen, b"ready\n", "the container's first line");
    cleanup.run().await;
    elapsed
}

/// One `docker run` with the same hardening; the time until its first stdout line.
async fn cli_round(config: &DockerConfig, run_as: RunAs) -> Duration {
    let memory = config.memory_bytes.to_string();
    let cpus = format!("{}", config.nano_cpus as f64 / 1e9);
    let pids = config.pids_limit.to_string();
    let user = run_as.user();
    let run_label = format!("borg.run={}", new_run_id());
    let task_label = format!("borg.task={OWNER}");
    let instance_label = format!("borg.instance={}", config.instance);
    let args = [
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        &pids,
        "--memory",
        &memory,
        "--memory-swap",
        &memory,
        "--cpus",
        &cpus,
        "--init",
        "--user",
        &user,
        "--network",
        &config.network,
        "--workdir",
        "/workspace",
        "--label",
        "borg=1",
        "--label",
        &run_label,
        "--label",
        &task_label,
        "--label",
        &instance_label,
        &config.image,
        "echo",
        "ready",
    ];
    let started = Instant::now();
    let mut child = tokio::process::Command::new("docker")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("docker run");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("a line");
    let elapsed = started.elapsed();
    assert_eq!(line, "ready\n", "the container's first line");
    let _ = child.wait().await;
    elapsed
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
