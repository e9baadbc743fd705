//! The deployment files in `container/daemon/` (the systemd unit, borg's own Dockerfile and
//! the Compose file) say what the daemon needs: checked here by small parsers, always, and by
//! the real tools (`systemd-analyze verify`, `docker compose config`) where they are
//! installed. When one is missing the test says so loudly and goes on with the built-in checks;
//! under `BORG_TEST_STRICT=1` (CI, which installs both) a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The default of `BORG_SHUTDOWN_TIMEOUT_S`, as the code has it.
fn shutdown_timeout_default() -> Duration {
    let var = borg::config::VARIABLES
        .iter()
        .find(|v| v.name == "BORG_SHUTDOWN_TIMEOUT_S")
        .expect("BORG_SHUTDOWN_TIMEOUT_S is a setting");
    Duration::from_secs(var.default.parse().expect("a number of seconds"))
}

fn skip(tool: &str, why: &str) {
    let message = format!(
        "SKIPPED: {tool} is not available ({why}); only the built-in checks ran. \
         Install it to have the real tool check the file too."
    );
    // CI installs the tools (.ci/run): there a missing one is a failure.
    assert!(std::env::var("BORG_TEST_STRICT").is_err(), "{message}");
    eprintln!("{message}");
}

// ---- the systemd unit ----

/// `(section, key, value)` of every assignment of a unit file, in order.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: no continuation lines",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=value: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: outside a section", n + 1);
        out.push((section.clone(), key.trim().into(), value.trim().into()));
    }
    out
}

/// systemd's time spans: `90`, `60s`, `1min 30s`, `500ms`.
fn parse_timespan(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let digits = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (number, unit) = part.split_at(digits);
        let number: u64 = number
            .parse()
            .unwrap_or_else(|_| panic!("{text:?}: no number"));
        total += match unit {
            "" | "s" | "sec" | "second" | "seconds" => Duration::from_secs(number),
            "ms" | "msec" => Duration::from_millis(number),
            "m" | "min" | "minute" | "minutes" => Duration::from_secs(number * 60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(number * 3600),
            other => panic!("{text:?}: unknown unit {other:?}"),
        };
    }
    total
}

fn one<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    let values: Vec<&str> = unit
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "[{section}] {key}= once: {values:?}");
    values[0]
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog_and_an_orderly_stop() {
    let unit = parse_unit(&read("container/daemon/borg.service"));
    assert_eq!(one(&unit, "Service", "Type"), "notify");
    assert_eq!(
        one(&unit, "Service", "NotifyAccess"),
        "main",
        "only borg itself may notify, not what it starts"
    );
    let exec = one(&unit, "Service", "ExecStart");
    let mut words = exec.split_whitespace();
    let program = words.next().unwrap();
    assert!(
        program.starts_with('/') && program.ends_with("/borg"),
        "ExecStart runs an absolute path to borg: {exec}"
    );
    assert_eq!(words.collect::<Vec<_>>(), ["run"], "{exec}");

    let watchdog = parse_timespan(one(&unit, "Service", "WatchdogSec"));
    assert!(
        watchdog >= Duration::from_secs(10),
        "WatchdogSec={watchdog:?}"
    );
    let stop = parse_timespan(one(&unit, "Service", "TimeoutStopSec"));
    assert!(
        stop > shutdown_timeout_default(),
        "TimeoutStopSec ({stop:?}) must exceed BORG_SHUTDOWN_TIMEOUT_S's default ({:?})",
        shutdown_timeout_default()
    );
    let restart = one(&unit, "Service", "Restart");
    assert!(
        ["on-failure", "always"].contains(&restart),
        "a watchdog kill or a crash restarts borg: Restart={restart}"
    );
    assert_eq!(
        one(&unit, "Service", "KillMode"),
        "mixed",
        "SIGTERM to borg alone, which stops its children in order"
    );
    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        return skip("systemd-analyze", "not on PATH");
    };
    if !version.status.success() {
        return skip("systemd-analyze", "`systemd-analyze --version` failed");
    }
    // verify insists that ExecStart exists and is executable: point it at the binary built
    // for this test. Everything else is the file as shipped.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("container/daemon/borg.service")
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(_) => format!("ExecStart={} run", env!("CARGO_BIN_EXE_borg")),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("borg.service");
    std::fs::write(&path, unit + "\n").unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify warns about unknown keys and bad values but still exits 0: any line about our
    // unit is a failure. Lines about other units on this machine are not ours to judge.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("borg.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

// ---- borg's Dockerfile ----

fn from_lines(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter(|l| l.to_ascii_uppercase().starts_with("FROM "))
        .map(|l| l[5..].trim().to_owned())
        .collect()
}

/// The value given to `name` on a line `<prefix>name=value`.
fn assignment(text: &str, prefix: &str, name: &str) -> String {
    let start = format!("{prefix}{name}=");
    let values: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&start))
        .collect();
    assert_eq!(values.len(), 1, "one {start}…: {values:?}");
    values[0].trim().trim_matches('"').to_owned()
}

#[test]
fn borgs_image_builds_on_rust_and_runs_on_bookworm_with_the_pinned_claude_cli() {
    let dockerfile = read("container/daemon/borg.Dockerfile");
    let stages = from_lines(&dockerfile);
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    assert!(
        stages[0].starts_with("rust:1.95") && stages[0].ends_with(" AS build"),
        "{stages:?}"
    );
    assert_eq!(stages[1], "debian:bookworm-slim");
    assert!(
        stages[0].contains("bookworm"),
        "the builder links against the runtime's glibc: same Debian release: {stages:?}"
    );
    assert!(dockerfile.contains("COPY --from=build "), "{dockerfile}");

    let runtime = &dockerfile[dockerfile.find("FROM debian:bookworm-slim").unwrap()..];
    for package in ["git", "ca-certificates", "nodejs", "npm"] {
        assert!(
            runtime.split_whitespace().any(|w| w == package),
            "the runtime installs {package}"
        );
    }
    for cli in ["docker.io", "docker-ce-cli"] {
        assert!(!runtime.contains(cli), "no docker CLI: borg uses the API");
    }

    let pinned = assignment(&dockerfile, "ARG ", "CLAUDE_CODE_VERSION");
    let ci = assignment(&read(".ci/run"), "", "CLAUDE_CODE_VERSION");
    let agent = assignment(&read("container/Dockerfile"), "ARG ", "CLAUDE_CODE_VERSION");
    assert_eq!(pinned, ci, "borg's image pins the claude CLI .ci/run pins");
    assert_eq!(pinned, agent, "and the agent image's");
    assert!(
        dockerfile.contains("@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"),
        "the pinned version is the one installed"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_packages_and_secrets() {
    // BuildKit reads `<Dockerfile>.dockerignore` beside the Dockerfile.
    let ignore = read("container/daemon/borg.Dockerfile.dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["**/target", "**/node_modules", "**/.env", ".git"] {
        assert!(patterns.contains(&needed), "{needed} in {patterns:?}");
    }
}

#[test]
fn the_deployment_files_are_not_part_of_the_agent_image() {
    use borg::docker::BuildContext;
    let from_source = BuildContext::from_dir(&root().join("container"), &[]).unwrap();
    assert_eq!(
        from_source.hash(),
        BuildContext::embedded(&[]).unwrap().hash(),
        "container/daemon/ changed the agent image's context"
    );
}

// ---- the Compose file ----

/// The subset of YAML the Compose file uses: block maps and lists of plain or quoted
/// scalars, `#` comments.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Scalar(String),
    List(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> &Yaml {
        match self {
            Yaml::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key} in {self:?}")),
            _ => panic!("{key} of a non-map {self:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Yaml::Scalar(s) => s,
            _ => panic!("not a scalar: {self:?}"),
        }
    }

    fn list(&self) -> Vec<&str> {
        match self {
            Yaml::List(items) => items.iter().map(Yaml::str).collect(),
            _ => panic!("not a list: {self:?}"),
        }
    }
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) if i == 0 || line[..i].ends_with(' ') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn scalar(text: &str) -> Yaml {
    let t = text.trim();
    let unquoted = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(t);
    Yaml::Scalar(unquoted.to_owned())
}

fn parse_yaml(text: &str) -> Yaml {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .map(strip_comment)
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.len() - l.trim_start().len(), l.trim()))
        .collect();
    assert!(
        lines.iter().all(|(_, l)| !l.contains('\t')),
        "no tabs in YAML"
    );
    let mut at = 0;
    let doc = block(&lines, &mut at, 0);
    assert_eq!(at, lines.len(), "unparsed line {:?}", lines.get(at));
    doc
}

fn block(lines: &[(usize, &str)], at: &mut usize, indent: usize) -> Yaml {
    if lines[*at].1.starts_with("- ") {
        let mut items = Vec::new();
        while *at < lines.len() && lines[*at].0 == indent && lines[*at].1.starts_with("- ") {
            items.push(scalar(&lines[*at].1[2..]));
            *at += 1;
        }
        return Yaml::List(items);
    }
    let mut entries = Vec::new();
    while *at < lines.len() && lines[*at].0 == indent {
        let line = lines[*at].1;
        let (key, rest) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not key: value: {line}"));
        *at += 1;
        let value = if rest.trim().is_empty() {
            let inner = lines.get(*at).map(|l| l.0).unwrap_or(0);
            // A list may sit at its key's own indentation, as YAML allows.
            let nested = inner > indent || (inner == indent && lines[*at].1.starts_with("- "));
            assert!(nested, "{key}: has no value");
            block(lines, at, inner)
        } else {
            scalar(rest)
        };
        entries.push((key.trim().to_owned(), value));
    }
    Yaml::Map(entries)
}

/// Compose's `${VAR:-default}` with VAR unset: the default.
fn defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let inner = &rest[start + 2..end];
        let (_, default) = inner
            .split_once(":-")
            .unwrap_or_else(|| panic!("${{{inner}}} has a default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out + rest
}

#[test]
fn the_compose_file_mounts_the_socket_the_data_and_the_repositories_at_host_paths() {
    let compose_dir = root().join("container/daemon");
    let doc = parse_yaml(&read("container/daemon/docker-compose.yml"));
    let borg = doc.get("services").get("borg");

    let build = borg.get("build");
    let context = compose_dir.join(build.get("context").str());
    let dockerfile = context.join(build.get("dockerfile").str());
    assert_eq!(
        context.canonicalize().unwrap(),
        root().canonicalize().unwrap(),
        "the build context is the repository's top level"
    );
    assert!(dockerfile.is_file(), "{} exists", dockerfile.display());
    let ignore = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    assert!(ignore.is_file(), "{} exists", ignore.display());

    let volumes: Vec<String> = borg
        .get("volumes")
        .list()
        .into_iter()
        .map(defaults)
        .collect();
    assert!(
        volumes.contains(&"/var/run/docker.sock:/var/run/docker.sock".to_owned()),
        "the Docker socket is mounted: {volumes:?}"
    );
    let environment = borg.get("environment");
    let data_dir = defaults(environment.get("DATA_DIR").str());
    assert!(Path::new(&data_dir).is_absolute(), "DATA_DIR={data_dir}");
    assert!(
        volumes.contains(&format!("{data_dir}:{data_dir}")),
        "DATA_DIR is a bind mount at the same path inside and out: {volumes:?}"
    );
    let repos = volumes
        .iter()
        .filter(|v| !v.contains("docker.sock") && !v.starts_with(&data_dir))
        .collect::<Vec<_>>();
    assert!(!repos.is_empty(), "repositories are mounted: {volumes:?}");
    for mount in repos {
        let (host, inside) = mount.split_once(':').unwrap();
        assert_eq!(host, inside, "a repository at the same path inside and out");
    }
    assert_eq!(
        environment.get("SELF_UPDATE").str(),
        "false",
        "no toolchain in the image to rebuild borg with"
    );

    let env_files = borg.get("env_file").list();
    assert_eq!(env_files.len(), 1, "{env_files:?}");
    let env_file = compose_dir.join(defaults(env_files[0]));
    assert_eq!(env_file.file_name().unwrap(), ".env");
    assert_eq!(
        env_file.parent().unwrap().canonicalize().unwrap(),
        root().canonicalize().unwrap(),
        "the repository's .env is passed through"
    );
    let grace = parse_timespan(borg.get("stop_grace_period").str());
    assert!(
        grace > shutdown_timeout_default(),
        "stop_grace_period ({grace:?}) leaves time for the ordered shutdown"
    );
    assert_eq!(borg.get("init").str(), "true", "an init reaps orphans");
}

#[test]
fn the_yaml_subset_parser_reads_maps_lists_and_comments() {
    let doc = parse_yaml(
        "# top\na:\n  b: \"x # not a comment\" # a comment\n  c:\n    - one\n    - 'two'\nd:\n- three\n",
    );
    assert_eq!(doc.get("a").get("b").str(), "x # not a comment");
    assert_eq!(doc.get("a").get("c").list(), ["one", "two"]);
    assert_eq!(doc.get("d").list(), ["three"]);
    assert_eq!(defaults("${A:-/x}:${B:-/y}/z"), "/x:/y/z");
    assert_eq!(parse_timespan("1min 30s"), Duration::from_secs(90));
}

#[test]
fn docker_compose_config_accepts_the_compose_file() {
    let tool = if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        vec!["docker", "compose"]
    } else if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        vec!["docker-compose"]
    } else {
        return skip(
            "docker compose (or docker-compose)",
            "neither `docker compose version` nor `docker-compose version` works",
        );
    };
    // A copy beside an empty .env, so the check needs no .env in the working tree and reads
    // no developer's settings.
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("container/daemon");
    std::fs::create_dir_all(&daemon).unwrap();
    for file in [
        "docker-compose.yml",
        "borg.Dockerfile",
        "borg.Dockerfile.dockerignore",
    ] {
        std::fs::copy(
            root().join("container/daemon").join(file),
            daemon.join(file),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join(".env"), "").unwrap();
    let mut cmd = Command::new(tool[0]);
    cmd.args(&tool[1..])
        .arg("-f")
        .arg(daemon.join("docker-compose.yml"))
        .args(["config", "-q"])
        .current_dir(dir.path());
    for var in [
        "BORG_ENV_FILE",
        "BORG_DATA_DIR",
        "BORG_REPOS",
        "BORG_WEB_PORT",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{} config: {}\n{}",
        tool.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
