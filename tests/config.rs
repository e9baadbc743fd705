//! Configuration loading: values, defaults, errors, `.env` files and precedence.
//!
//! Nothing here changes this process's environment: values come from maps through
//! `Config::from_lookup` / `Config::load_with_env`, and the one test of the real
//! environment sets it on a child process.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use borg::config::{Config, ConfigError, LogFormat, VARIABLES, WatchedRepo, variable};

fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    let map: HashMap<&str, &str> = vars.iter().copied().collect();
    move |name| map.get(name).map(|v| (*v).to_owned())
}

fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(lookup(vars))
}

fn parse_ok(vars: &[(&str, &str)]) -> Config {
    parse(vars).unwrap_or_else(|e| panic!("{vars:?}: {e}"))
}

fn parse_err(vars: &[(&str, &str)]) -> ConfigError {
    match parse(vars) {
        Ok(config) => panic!("{vars:?} was accepted: {config:?}"),
        Err(e) => e,
    }
}

fn repo(path: &str) -> WatchedRepo {
    WatchedRepo {
        path: PathBuf::from(path),
        test_cmd: None,
        auto_merge: true,
        prompt_file: None,
        mode: None,
        lint_cmd: None,
        slug: None,
    }
}

/// A watched repository with its own test command.
fn tested(path: &str, test_cmd: &str) -> WatchedRepo {
    WatchedRepo {
        test_cmd: Some(test_cmd.to_owned()),
        ..repo(path)
    }
}

/// `repo` with auto-merge off (`!manual`).
fn manual(repo: WatchedRepo) -> WatchedRepo {
    WatchedRepo {
        auto_merge: false,
        ..repo
    }
}

fn dir_with_env(contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), contents).unwrap();
    dir
}

#[test]
fn all_defaults_when_nothing_is_set() {
    let c = parse_ok(&[]);
    assert_eq!(c.telegram_bot_token, None);
    assert_eq!(c.assistant_name, "Borg");
    assert_eq!(c.claude_model, "claude-sonnet-4-6");
    assert_eq!(c.pipeline_repo, None);
    assert_eq!(c.pipeline_test_cmd, "cargo test");
    assert_eq!(c.watched_repos, vec![]);
    assert_eq!(c.pipeline_admin_chat, None);
    assert_eq!(c.admin_users, Vec::<String>::new());
    assert_eq!(c.release_interval_mins, 180);
    assert!(!c.continuous_mode);
    assert_eq!(c.collection_window_ms, 3000);
    assert_eq!(c.cooldown_ms, 5000);
    assert_eq!(c.agent_timeout_s, 600);
    assert_eq!(c.max_concurrent_agents, 4);
    assert_eq!(c.rate_limit_per_minute, 5);
    assert_eq!(c.web_port, 3131);
    assert_eq!(c.web_bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.web_token, None);
    assert!(!c.whatsapp_enabled);
    assert_eq!(c.whatsapp_auth_dir, Path::new("data/whatsapp-auth"));
    assert!(!c.discord_enabled);
    assert_eq!(c.discord_token, None);
    assert_eq!(c.data_dir, Path::new("data"));
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.shutdown_timeout_s, 30);
    assert_eq!(c, Config::default());
}

#[test]
fn every_variable_is_read_with_a_non_default_value() {
    let c = parse_ok(&[
        ("TELEGRAM_BOT_TOKEN", "123456:telegram-secret"),
        ("ASSISTANT_NAME", "Hugh"),
        ("CLAUDE_MODEL", "claude-opus-4-1"),
        ("PIPELINE_REPO", "/srv/borg"),
        ("PIPELINE_TEST_CMD", "make check"),
        ("WATCHED_REPOS", "/srv/site:npm test|/srv/tool"),
        ("PIPELINE_ADMIN_CHAT", "tg:12345"),
        ("BORG_ADMIN_USERS", "tg:1, discord:2"),
        ("RELEASE_INTERVAL_MINS", "60"),
        ("CONTINUOUS_MODE", "true"),
        ("COLLECTION_WINDOW_MS", "0"),
        ("COOLDOWN_MS", "250"),
        ("AGENT_TIMEOUT_S", "1200"),
        ("MAX_CONCURRENT_AGENTS", "8"),
        ("RATE_LIMIT_PER_MINUTE", "30"),
        ("WEB_PORT", "8080"),
        ("WEB_BIND", "::"),
        ("WEB_TOKEN", "web-secret-token"),
        ("WHATSAPP_ENABLED", "yes"),
        ("WHATSAPP_AUTH_DIR", "/var/lib/borg/wa"),
        ("DISCORD_ENABLED", "on"),
        ("DISCORD_TOKEN", "discord-secret"),
        ("DATA_DIR", "/var/lib/borg"),
        ("LOG_FORMAT", "JSON"),
        ("BORG_SHUTDOWN_TIMEOUT_S", "5"),
        ("AGENT_IDLE_TIMEOUT_S", "45"),
        ("CLAUDE_BIN", "/opt/claude/bin/claude"),
        ("TELEGRAM_API_URL", "http://127.0.0.1:8081/"),
        ("DISCORD_API_URL", "http://127.0.0.1:8082"),
        ("DISCORD_GATEWAY_URL", "ws://127.0.0.1:8083/gateway"),
    ]);
    assert_eq!(
        c.telegram_bot_token.as_deref(),
        Some("123456:telegram-secret")
    );
    assert_eq!(c.assistant_name, "Hugh");
    assert_eq!(c.claude_model, "claude-opus-4-1");
    assert_eq!(c.pipeline_repo, Some(PathBuf::from("/srv/borg")));
    assert_eq!(c.pipeline_test_cmd, "make check");
    let site = tested("/srv/site", "npm test");
    assert_eq!(c.watched_repos, vec![site, repo("/srv/tool")]);
    assert_eq!(c.pipeline_admin_chat.as_deref(), Some("tg:12345"));
    assert_eq!(c.admin_users, ["tg:1", "discord:2"]);
    assert_eq!(c.release_interval_mins, 60);
    assert!(c.continuous_mode);
    assert_eq!(c.collection_window_ms, 0);
    assert_eq!(c.cooldown_ms, 250);
    assert_eq!(c.agent_timeout_s, 1200);
    assert_eq!(c.max_concurrent_agents, 8);
    assert_eq!(c.rate_limit_per_minute, 30);
    assert_eq!(c.web_port, 8080);
    assert_eq!(c.web_bind, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(c.web_token.as_deref(), Some("web-secret-token"));
    assert!(c.whatsapp_enabled);
    assert_eq!(c.whatsapp_auth_dir, Path::new("/var/lib/borg/wa"));
    assert!(c.discord_enabled);
    assert_eq!(c.discord_token.as_deref(), Some("discord-secret"));
    assert_eq!(c.data_dir, Path::new("/var/lib/borg"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.shutdown_timeout_s, 5);
    assert_eq!(c.agent_idle_timeout(), Duration::from_secs(45));
    assert_eq!(c.claude_bin, Path::new("/opt/claude/bin/claude"));
    assert_eq!(c.telegram_api_url.as_deref(), Some("http://127.0.0.1:8081"));
    assert_eq!(c.discord_api_url.as_deref(), Some("http://127.0.0.1:8082"));
    assert_eq!(
        c.discord_gateway_url.as_deref(),
        Some("ws://127.0.0.1:8083/gateway")
    );

    assert_eq!(c.release_interval(), Duration::from_secs(3600));
    assert_eq!(c.collection_window(), Duration::ZERO);
    assert_eq!(c.cooldown(), Duration::from_millis(250));
    assert_eq!(c.agent_timeout(), Duration::from_secs(1200));
    assert_eq!(c.shutdown_timeout(), Duration::from_secs(5));
    assert_eq!(c.web_addr().to_string(), "[::]:8080");
    assert_eq!(c.test_cmd_for(&c.watched_repos[0]), "npm test");
    assert_eq!(c.test_cmd_for(&c.watched_repos[1]), "make check");
}

#[test]
fn the_table_documents_every_variable() {
    let names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
    assert_eq!(names.len(), 41);
    for name in [
        "TELEGRAM_BOT_TOKEN",
        "WATCHED_REPOS",
        "BORG_ADMIN_USERS",
        "WEB_BIND",
        "WEB_TOKEN",
        "LOG_FORMAT",
        "BORG_SHUTDOWN_TIMEOUT_S",
        "AGENT_SANDBOX",
        "AGENT_IMAGE",
        "AGENT_NETWORK",
        "TEST_TIMEOUT_S",
        "WHATSAPP_BRIDGE_CMD",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    assert_eq!(variable("COOLDOWN_MS").unwrap().default, "5000");
    assert_eq!(variable("NOT_A_BORG_VARIABLE"), None);
}

#[test]
fn data_dir_moves_the_default_whatsapp_auth_dir() {
    let c = parse_ok(&[("DATA_DIR", "/var/lib/borg")]);
    assert_eq!(
        c.whatsapp_auth_dir,
        Path::new("/var/lib/borg/whatsapp-auth")
    );
}

#[test]
fn empty_values_count_as_unset_and_unknown_variables_are_ignored() {
    let vars: Vec<(&str, &str)> = VARIABLES.iter().map(|v| (v.name, "")).collect();
    assert_eq!(parse_ok(&vars), Config::default());
    assert_eq!(parse_ok(&[("SOMETHING_ELSE", "x")]), Config::default());
}

#[test]
fn booleans_accept_the_usual_spellings_in_any_case() {
    for (value, expected) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("Yes", true),
        ("on", true),
        (" true ", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("NO", false),
        ("off", false),
    ] {
        let c = parse_ok(&[("CONTINUOUS_MODE", value)]);
        assert_eq!(c.continuous_mode, expected, "{value:?}");
    }
}

#[test]
fn numbers_are_trimmed() {
    assert_eq!(parse_ok(&[("WEB_PORT", " 8080 ")]).web_port, 8080);
}

#[test]
fn bad_values_name_the_variable_the_value_and_what_is_allowed() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "COOLDOWN_MS",
            "abc",
            &["a whole number of milliseconds (0 to 86400000)"],
        ),
        ("COOLDOWN_MS", "86400001", &["(0 to 86400000)"]),
        ("COOLDOWN_MS", "-1", &["(0 to 86400000)"]),
        ("COOLDOWN_MS", "0x10", &["(0 to 86400000)"]),
        ("COOLDOWN_MS", "+5", &["(0 to 86400000)"]),
        ("COOLDOWN_MS", "1.5", &["(0 to 86400000)"]),
        (
            "COOLDOWN_MS",
            "99999999999999999999999",
            &["(0 to 86400000)"],
        ),
        ("RELEASE_INTERVAL_MINS", "0", &["(1 to 10080)"]),
        ("COLLECTION_WINDOW_MS", "600001", &["(0 to 600000)"]),
        ("AGENT_TIMEOUT_S", "86401", &["(1 to 86400)"]),
        ("MAX_CONCURRENT_AGENTS", "65", &["(1 to 64)"]),
        ("RATE_LIMIT_PER_MINUTE", "0", &["(1 to 1000)"]),
        ("WEB_PORT", "0", &["(1 to 65535)"]),
        ("WEB_PORT", "65536", &["(1 to 65535)"]),
        ("BORG_SHUTDOWN_TIMEOUT_S", "3601", &["(1 to 3600)"]),
        ("AGENT_IDLE_TIMEOUT_S", "0", &["(1 to 86400)"]),
        ("AGENT_SANDBOX", "vm", &["docker or process"]),
        ("AGENT_NETWORK", "internet", &["bridge, host or none"]),
        ("AGENT_IMAGE", "borg agent", &["without whitespace"]),
        ("TEST_TIMEOUT_S", "0", &["(1 to 86400)"]),
        ("TELEGRAM_API_URL", "ftp://example", &["http://"]),
        ("DISCORD_GATEWAY_URL", "http://127.0.0.1", &["ws://"]),
        (
            "CONTINUOUS_MODE",
            "maybe",
            &["true/false", "1/0", "yes/no", "on/off"],
        ),
        ("WHATSAPP_ENABLED", "2", &["true/false", "yes/no"]),
        ("DISCORD_ENABLED", "enabled", &["true/false", "on/off"]),
        ("ASSISTANT_NAME", "Big Borg", &["without whitespace"]),
        ("ASSISTANT_NAME", &"x".repeat(33), &["1 to 32 characters"]),
        ("CLAUDE_MODEL", "claude sonnet", &["without whitespace"]),
        (
            "PIPELINE_ADMIN_CHAT",
            "tg: 123",
            &["chat id without whitespace"],
        ),
        ("BORG_ADMIN_USERS", "tg:1,tg 2", &["\"tg 2\"", "user ids"]),
        ("WEB_BIND", "localhost", &["an IP address"]),
        ("LOG_FORMAT", "xml", &["human or json"]),
        ("WATCHED_REPOS", "/a:make||/b", &["entry 2 of 3 is empty"]),
        ("WATCHED_REPOS", "/a|", &["entry 2 of 2 is empty"]),
        (
            "WATCHED_REPOS",
            " :make test",
            &["entry 1 of 1 has an empty path"],
        ),
        ("WATCHED_REPOS", "/a:t:p:m:l:s:x", &["entry 1 of 1 has 7"]),
        ("WATCHED_REPOS", "/a|/b|/a:make", &["entry 3 of 3 repeats"]),
    ];
    for (var, value, allowed) in cases {
        let err = parse_err(&[(var, value)]);
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("invalid {var}=")), "{shown}");
        assert!(shown.contains(&format!("{value:?}")), "{shown}");
        for part in *allowed {
            assert!(shown.contains(part), "{shown} lacks {part:?}");
        }
        assert!(
            shown.contains(variable(var).unwrap().allowed),
            "{shown} does not quote the documented allowed values"
        );
        assert_eq!(err.var(), Some(*var));
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn the_documented_example_message() {
    let err = parse_err(&[("COOLDOWN_MS", "abc")]);
    assert_eq!(
        err.to_string(),
        "invalid COOLDOWN_MS=\"abc\": expected a whole number of milliseconds (0 to 86400000)"
    );
}

#[test]
fn discord_needs_a_token_when_enabled() {
    let err = parse_err(&[("DISCORD_ENABLED", "true")]);
    assert_eq!(err.var(), Some("DISCORD_TOKEN"));
    assert_eq!(
        err.to_string(),
        "missing DISCORD_TOKEN: required when DISCORD_ENABLED=true"
    );
    assert_eq!(err.exit_code(), 2);
    let err = parse_err(&[("DISCORD_ENABLED", "1"), ("DISCORD_TOKEN", "")]);
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
    // A token without the channel is fine (kept for later).
    assert!(!parse_ok(&[("DISCORD_TOKEN", "t")]).discord_enabled);
}

#[test]
fn watched_repos_entries() {
    let parsed = |value: &str| parse_ok(&[("WATCHED_REPOS", value)]).watched_repos;

    assert_eq!(parsed("/srv/a"), vec![repo("/srv/a")]);
    assert_eq!(parsed("/srv/a:"), vec![repo("/srv/a")]);
    assert_eq!(
        parsed(" /srv/a : make test | /srv/b:cargo test"),
        vec![
            tested("/srv/a", "make test"),
            tested("/srv/b", "cargo test"),
        ]
    );
    // `!manual` ends the test command and turns auto-merge off.
    for value in ["/srv/a:make test!manual", "/srv/a:make test !manual"] {
        assert_eq!(
            parsed(value),
            vec![manual(tested("/srv/a", "make test"))],
            "{value}"
        );
    }
    assert_eq!(parsed("/srv/a:!manual"), vec![manual(repo("/srv/a"))]);
    // All optional fields.
    assert_eq!(
        parsed("/srv/a:npm test!manual:prompts/a.md:sweep:npm run lint:site"),
        vec![WatchedRepo {
            path: "/srv/a".into(),
            test_cmd: Some("npm test".into()),
            auto_merge: false,
            prompt_file: Some("prompts/a.md".into()),
            mode: Some("sweep".into()),
            lint_cmd: Some("npm run lint".into()),
            slug: Some("site".into()),
        }]
    );
    // Fields may be skipped or left empty.
    assert_eq!(
        parsed("/srv/a::::ruff check|/srv/b:make:p.md"),
        vec![
            WatchedRepo {
                lint_cmd: Some("ruff check".into()),
                ..repo("/srv/a")
            },
            WatchedRepo {
                test_cmd: Some("make".into()),
                prompt_file: Some("p.md".into()),
                ..repo("/srv/b")
            },
        ]
    );
}

#[test]
fn the_dashboard_beyond_loopback_needs_a_token() {
    for bind in ["0.0.0.0", "::", "192.168.1.10"] {
        let err = parse_err(&[("WEB_BIND", bind)]);
        assert_eq!(err.var(), Some("WEB_TOKEN"), "{bind}");
        let shown = err.to_string();
        assert!(
            shown.starts_with("missing WEB_TOKEN: required when WEB_BIND is not a loopback"),
            "{shown}"
        );
        assert_eq!(err.exit_code(), 2);
        let err = parse_err(&[("WEB_BIND", bind), ("WEB_TOKEN", "")]);
        assert_eq!(err.var(), Some("WEB_TOKEN"), "an empty token is no token");
        let c = parse_ok(&[("WEB_BIND", bind), ("WEB_TOKEN", "s3cret-s3cret")]);
        assert_eq!(c.web_token.as_deref(), Some("s3cret-s3cret"));
    }
    // Loopback needs none, and may still have one.
    for bind in ["127.0.0.1", "::1", "127.0.0.2"] {
        assert_eq!(parse_ok(&[("WEB_BIND", bind)]).web_token, None);
    }
    assert!(parse_ok(&[("WEB_TOKEN", "t")]).web_token.is_some());
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let c = parse_ok(&[
        ("TELEGRAM_BOT_TOKEN", "tg-very-secret"),
        ("DISCORD_ENABLED", "true"),
        ("DISCORD_TOKEN", "dc-very-secret"),
        ("WEB_TOKEN", "web-very-secret"),
    ]);
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(
            shown.contains("telegram_bot_token: Some(<redacted>)"),
            "{shown}"
        );
        assert!(shown.contains("discord_token: Some(<redacted>)"), "{shown}");
        assert!(shown.contains("web_token: Some(<redacted>)"), "{shown}");
        assert!(shown.contains("assistant_name: \"Borg\""), "{shown}");
    }
    assert!(format!("{:?}", Config::default()).contains("discord_token: None"));
}

#[test]
fn dotenv_file_is_read_and_paths_resolved_against_its_directory() {
    let dir = dir_with_env(
        "# borg settings\n\
         ASSISTANT_NAME=Hugh\n\
         export COOLDOWN_MS=250\n\
         PIPELINE_TEST_CMD=\"make test  # not a comment\"\n\
         CLAUDE_MODEL='claude-opus-4-1' # a comment\n\
         PIPELINE_REPO=/srv/borg\n\
         WATCHED_REPOS=sites/blog:hugo!manual|/srv/tool\n\
         DATA_DIR=state\n\
         SOMETHING_ELSE=ignored\n\
         ASSISTANT_NAME=Second\n",
    );
    let c = Config::load_with_env(dir.path(), |_| None).unwrap();
    assert_eq!(c.assistant_name, "Hugh", "the first definition wins");
    assert_eq!(c.cooldown_ms, 250);
    assert_eq!(c.pipeline_test_cmd, "make test  # not a comment");
    assert_eq!(c.claude_model, "claude-opus-4-1");
    assert_eq!(c.pipeline_repo, Some(PathBuf::from("/srv/borg")));
    assert_eq!(c.watched_repos[0].path, dir.path().join("sites/blog"));
    assert!(!c.watched_repos[0].auto_merge);
    assert_eq!(c.watched_repos[1].path, Path::new("/srv/tool"));
    assert_eq!(c.data_dir, dir.path().join("state"));
    assert_eq!(c.whatsapp_auth_dir, dir.path().join("state/whatsapp-auth"));
}

#[test]
fn environment_wins_over_dotenv() {
    let dir = dir_with_env("COOLDOWN_MS=250\nWEB_PORT=8080\nAGENT_TIMEOUT_S=60\n");
    let env = lookup(&[("COOLDOWN_MS", "999"), ("AGENT_TIMEOUT_S", "")]);
    let c = Config::load_with_env(dir.path(), env).unwrap();
    assert_eq!(c.cooldown_ms, 999, "the environment wins");
    assert_eq!(c.web_port, 8080, ".env fills in what the environment lacks");
    assert_eq!(
        c.agent_timeout_s, 600,
        "an empty environment value means the default"
    );
}

#[test]
fn no_dotenv_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::load_with_env(dir.path(), |_| None).unwrap();
    assert_eq!(c.cooldown_ms, 5000);
    assert_eq!(c.data_dir, dir.path().join("data"));
    assert_eq!(c.whatsapp_auth_dir, dir.path().join("data/whatsapp-auth"));
}

#[test]
fn load_reads_dotenv_with_the_real_environment() {
    // The real environment is unlikely to set this one; if it does, it must win.
    let name = "BORG_SHUTDOWN_TIMEOUT_S";
    let dir = dir_with_env(&format!("{name}=17\n"));
    let c = Config::load(dir.path()).unwrap();
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => assert_eq!(c.shutdown_timeout_s.to_string(), v.trim()),
        _ => assert_eq!(c.shutdown_timeout_s, 17),
    }
}

/// Run as a child process by `real_environment_wins_over_dotenv`; passes trivially otherwise.
#[test]
fn child_process_real_environment() {
    let Some(dir) = std::env::var_os("BORG_CONFIG_TEST_DIR") else {
        return;
    };
    let c = Config::load(Path::new(&dir)).unwrap();
    assert_eq!(c.shutdown_timeout_s, 99, "the environment wins");
    assert_eq!(c.cooldown_ms, 7, ".env fills in");
    assert_eq!(
        c.collection_window_ms, 3000,
        "empty in the environment: default"
    );
}

#[test]
fn real_environment_wins_over_dotenv() {
    let dir = dir_with_env("BORG_SHUTDOWN_TIMEOUT_S=11\nCOOLDOWN_MS=7\nCOLLECTION_WINDOW_MS=1\n");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_real_environment",
            "--test-threads=1",
        ])
        .env("BORG_CONFIG_TEST_DIR", dir.path())
        .env("BORG_SHUTDOWN_TIMEOUT_S", "99")
        .env("COLLECTION_WINDOW_MS", "")
        .env_remove("COOLDOWN_MS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_dotenv_line_names_the_file_and_line_but_not_the_secret() {
    let dir = dir_with_env("ASSISTANT_NAME=Hugh\n# comment\nTELEGRAM_BOT_TOKEN=\"secret\nX=1\n");
    let err = Config::load_with_env(dir.path(), |_| None).unwrap_err();
    let shown = err.to_string();
    let path = dir.path().join(".env");
    assert!(
        matches!(&err, ConfigError::EnvFile { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("line 3"), "{shown}");
    assert!(shown.contains("TELEGRAM_BOT_TOKEN"), "{shown}");
    assert!(shown.contains("quote"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(err.var(), None);
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn dotenv_line_with_a_bad_name_is_an_error() {
    let dir = dir_with_env("COOLDOWN_MS=1\n\n9LIVES=yes\n");
    let shown = Config::load_with_env(dir.path(), |_| None)
        .unwrap_err()
        .to_string();
    assert!(
        shown.contains("line 3") && shown.contains("variable name"),
        "{shown}"
    );
}

/// The `.env` of the original borg's setup guide, with unquoted values containing spaces
/// (which dotenv syntax rejects): it must keep working unchanged, except that its
/// `WEB_BIND=0.0.0.0` now needs a `WEB_TOKEN` (the original served its dashboard to the whole
/// network without a login; borg refuses that, naming both variables).
#[test]
fn an_original_borg_dotenv_works_unchanged() {
    let refused = dir_with_env("WEB_BIND=0.0.0.0\n");
    let err = Config::load_with_env(refused.path(), |_| None).unwrap_err();
    assert!(
        err.to_string().contains("WEB_TOKEN") && err.to_string().contains("WEB_BIND"),
        "{err}"
    );
    let dir = dir_with_env(
        "# Required: at least one messaging backend\n\
         WEB_TOKEN=a-token-for-the-dashboard\n\
         TELEGRAM_BOT_TOKEN=123456:ABC-def_ghi\n\
         DISCORD_ENABLED=true\n\
         DISCORD_TOKEN=MTIz.abc-def\n\
         WHATSAPP_ENABLED=true\n\
         ASSISTANT_NAME = Borg\n\
         PIPELINE_REPO=/absolute/path/to/target/repo\n\
         PIPELINE_TEST_CMD=zig build test\n\
         # PIPELINE_AUTO_MERGE=false        # skip auto-merge for primary repo\n\
         WATCHED_REPOS=/path/to/api:go test ./...|/path/to/web:bun test!manual\n\
         WEB_BIND=0.0.0.0\n\
         PIPELINE_ADMIN_CHAT=-100123456\n\
         CLAUDE_MODEL=\"claude-opus-4-1\"\n\
         MAX_PIPELINE_AGENTS=4\n",
    );
    let c = Config::load_with_env(dir.path(), |_| None).unwrap();
    assert_eq!(c.telegram_bot_token.as_deref(), Some("123456:ABC-def_ghi"));
    assert!(c.discord_enabled && c.whatsapp_enabled);
    assert_eq!(c.discord_token.as_deref(), Some("MTIz.abc-def"));
    assert_eq!(c.assistant_name, "Borg");
    assert_eq!(c.pipeline_test_cmd, "zig build test");
    assert_eq!(c.claude_model, "claude-opus-4-1");
    assert_eq!(
        c.watched_repos,
        vec![
            tested("/path/to/api", "go test ./..."),
            manual(tested("/path/to/web", "bun test")),
        ]
    );
    assert_eq!(c.web_bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.pipeline_admin_chat.as_deref(), Some("-100123456"));
}

#[test]
fn dotenv_with_a_byte_order_mark_works() {
    let dir = dir_with_env("\u{feff}COOLDOWN_MS=42\n");
    let c = Config::load_with_env(dir.path(), |_| None).unwrap();
    assert_eq!(c.cooldown_ms, 42);
}

#[test]
fn dotenv_line_without_equals_sign_is_an_error() {
    let dir = dir_with_env("COOLDOWN_MS=1\nJUST_A_WORD\n");
    let shown = Config::load_with_env(dir.path(), |_| None)
        .unwrap_err()
        .to_string();
    assert!(
        shown.contains(".env") && shown.contains("line 2"),
        "{shown}"
    );
}

#[test]
fn bad_value_in_dotenv_is_reported_like_any_other() {
    let dir = dir_with_env("WEB_PORT=http\n");
    let err = Config::load_with_env(dir.path(), |_| None).unwrap_err();
    assert_eq!(err.var(), Some("WEB_PORT"));
    assert!(err.to_string().contains("\"http\""), "{err}");
}
