//! `borg image build` and `borg image status` against the real engine. The build reuses the
//! engine's layer cache (the tests' agent image has the same context), so it takes seconds.

#[path = "support/docker.rs"]
mod docker;

use std::process::Command;

fn borg(image: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_borg"))
        .args(["--dir", dir.path().to_str().unwrap()])
        .args(args)
        .env("AGENT_IMAGE", image)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_build_then_status_says_current() {
    if docker::engine_with_image().await.is_none() {
        return;
    }
    let tag = "borg-agent:cli-test";
    let (ok, out) = borg(tag, &["image", "build"]);
    assert!(
        ok && out.contains("Step ") && out.contains(&format!("built {tag}")),
        "{out}"
    );
    let (ok, out) = borg(tag, &["image", "status"]);
    assert!(ok && out.contains("up to date   yes"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_missing_image_says_how_to_build_it() {
    if docker::engine().await.is_none() {
        return;
    }
    let (ok, out) = borg("borg-agent:never-built", &["image", "status"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("not built yet; run `borg image build`"),
        "{out}"
    );
}
