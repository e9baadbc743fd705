//! `borg image build` and `borg image status`: the agent image (`AGENT_IMAGE`), built from
//! the `container/` folder compiled into this binary.

use std::process::ExitCode;

use crate::config::Config;
use bollard::Docker;

use crate::docker::{
    BuildContext, DockerError, build_agent_image, host_extra_ca_certs, image_status,
};

fn fail(why: String) -> ExitCode {
    eprintln!("borg: {why}");
    ExitCode::FAILURE
}

/// Builds `tag` from the `container/` folder compiled into this binary (plus this machine's
/// extra CA certificates); `progress` gets each line the build prints.
pub async fn build_embedded(
    docker: &Docker,
    tag: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), DockerError> {
    let context = BuildContext::embedded(&host_extra_ca_certs())?;
    build_agent_image(docker, &context, tag, progress).await
}

/// Builds the image, printing the build's steps as they come.
pub async fn build(config: &Config) -> ExitCode {
    let tag = &config.agent_image;
    let docker = match crate::docker::connect().await {
        Ok(docker) => docker,
        Err(e) => return fail(e.to_string()),
    };
    println!(
        "building {tag} (the first build takes minutes: Debian packages, Node, the claude CLI)"
    );
    let started = std::time::Instant::now();
    let mut progress = |line: &str| {
        let line = line.trim_end();
        if line.starts_with("Step ") {
            println!("[{:>4}s] {line}", started.elapsed().as_secs());
        } else if !line.is_empty() {
            println!("        {line}");
        }
    };
    match build_embedded(&docker, tag, &mut progress).await {
        Ok(()) => {
            println!("built {tag} in {} s", started.elapsed().as_secs());
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!(
            "{e}\nIf the base image debian:bookworm-slim cannot be pulled (no registry), \
             make it locally with container/make-base-image.sh (needs mmdebstrap)."
        )),
    }
}

/// Which image agents use, whether it exists, when it was built, and whether it is current.
pub async fn status(config: &Config) -> ExitCode {
    let tag = &config.agent_image;
    println!("sandbox      {}", config.agent_sandbox.as_str());
    println!("image        {tag}");
    let docker = match crate::docker::connect().await {
        Ok(docker) => docker,
        Err(e) => return fail(e.to_string()),
    };
    let current = BuildContext::embedded(&host_extra_ca_certs()).map(|c| c.hash().to_owned());
    match image_status(&docker, tag).await {
        Ok(Some(image)) => {
            println!("id           {}", image.id);
            println!(
                "built        {}",
                image.created.as_deref().unwrap_or("unknown")
            );
            let fresh = match (&image.context_hash, &current) {
                (Some(built), Ok(now)) if built == now => "yes",
                (None, _) => "unknown (not built by borg)",
                _ => "no: container/ changed since; run `borg image build`",
            };
            println!("up to date   {fresh}");
            ExitCode::SUCCESS
        }
        Ok(None) => fail(format!("{tag} is not built yet; run `borg image build`")),
        Err(e) => fail(e.to_string()),
    }
}
