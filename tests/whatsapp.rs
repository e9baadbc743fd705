//! The WhatsApp adapter at its boundary: the real bridge actor and transport, starting a
//! bridge process through the same code path as `node bridge.mjs` (`WhatsAppConfig::
//! with_command`, which `WHATSAPP_BRIDGE_CMD` sets). The bridge is a fake speaking the line
//! protocol (`support/fake-wa-bridge.sh`), or the real script in its `--self-test` mode, which
//! drives its own handlers with Baileys-shaped events. WhatsApp itself is never reached.

#[path = "support/fake-wa-bridge.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Duration;

use actors::chat::{ChatId, ChatTransport, Format, TransportError};
use borg::whatsapp::{
    BRIDGE_SCRIPT, BridgeArgs, Phase, WhatsAppBridge, WhatsAppConfig, WhatsAppLink,
    WhatsAppTransport,
};
use harness::*;
use supervisors::{Backoff, Introspection, SupervisorRef, SupervisorSpec};

#[tokio::test]
async fn a_message_from_the_bridge_becomes_an_incoming_message() {
    let mut bridge = start("normal", |_| {}).await;
    let got = bridge.next().await;
    assert_eq!(got.chat, group());
    assert_eq!(
        (got.message_id.as_str(), got.text.as_str()),
        ("M1", "@15550001111 hello bot")
    );
    assert_eq!(
        got.sender_id, "wa:4915111111111@s.whatsapp.net",
        "device part dropped"
    );
    assert_eq!(
        (got.sender_name.as_str(), got.chat_title.as_str()),
        ("Ada", "Fake group")
    );
    assert!(got.mentions_bot, "a mention of the bot's own jid: {got:?}");
    assert!(!got.private && !got.reply_to_bot);
    assert_eq!(got.at_ms, 1_700_000_000_000);
    bridge.until_phase(Phase::Connected).await;
    assert_eq!(
        bridge.link.status().me.as_deref(),
        Some("15550001111:4@s.whatsapp.net")
    );

    let auth = bridge.dir.path().join("auth");
    assert!(
        bridge.log().contains(&format!("auth {}", auth.display())),
        "{}",
        bridge.log()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&auth).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the session's keys are private");
    bridge.stop().await;
}

#[tokio::test]
async fn send_reaches_the_bridge_and_returns_its_ack() {
    let bridge = start("normal", |_| {}).await;
    bridge.until_phase(Phase::Connected).await;
    let t = &bridge.transport;
    let id = t
        .send(&group(), "two\nlines ✓", Format::Markdown, Some("M1"))
        .await
        .unwrap();
    let line = bridge
        .log()
        .lines()
        .find_map(|l| l.strip_prefix("got ").map(str::to_owned))
        .unwrap();
    let sent: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(sent["type"], "send");
    assert_eq!(sent["chat"], "120363000000000001@g.us");
    assert_eq!(
        (sent["text"].as_str(), sent["reply_to"].as_str()),
        (Some("two\nlines ✓"), Some("M1"))
    );
    assert_eq!(
        id,
        format!("FAKE-{}", sent["req"]),
        "the id comes from the bridge's ack"
    );

    t.edit(&group(), &id, "edited").await.unwrap();
    t.typing(&group()).await.unwrap();
    let refused = t.send(&group(), "please fail", Format::Plain, None).await;
    assert_eq!(
        refused,
        Err(TransportError::ChatUnavailable("forbidden".into()))
    );
    let not_wa = t
        .send(&ChatId("tg:5".into()), "hi", Format::Plain, None)
        .await;
    assert!(
        matches!(not_wa, Err(TransportError::ChatUnavailable(_))),
        "{not_wa:?}"
    );

    let log = bridge.log();
    assert!(
        log.contains(r#""type":"edit","req":"#) && log.contains(r#""id":"FAKE-"#),
        "{log}"
    );
    assert!(
        log.contains(r#"{"type":"typing","chat":"120363000000000001@g.us"}"#),
        "{log}"
    );
    assert_eq!(bridge.link.pending_requests(), 0);
    bridge.stop().await;
}

#[tokio::test]
async fn a_bridge_that_never_acks_makes_send_fail_with_a_timeout() {
    let bridge = start("mute", |c| c.send_timeout = Duration::from_millis(300)).await;
    bridge.until_phase(Phase::Connected).await;
    let started = tokio::time::Instant::now();
    let err = bridge
        .transport
        .send(&group(), "hello?", Format::Plain, None)
        .await
        .unwrap_err();
    let TransportError::Unavailable(why) = &err else {
        panic!("{err:?}")
    };
    assert!(
        why.contains("did not confirm") && why.contains("300ms"),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        bridge.log().contains("hello?"),
        "the command did reach the bridge"
    );
    assert_eq!(
        bridge.link.pending_requests(),
        0,
        "the timed-out request is forgotten"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn garbage_lines_are_skipped_with_a_logged_reason() {
    let mut bridge = start("garbage", |_| {}).await;
    assert_eq!(bridge.next().await.text, "the good one");
    let stats = bridge.stats().await;
    assert_eq!((stats.malformed, stats.delivered), (5, 1), "{stats:?}");
    assert!(
        stats
            .last_malformed
            .unwrap()
            .contains("over the 1048576-byte limit")
    );
    let logs = logs();
    for reason in [
        "not JSON",
        "not a JSON object",
        "unknown variant `bogus`",
        "missing field `id`",
    ] {
        assert!(logs.contains(reason), "no logged reason {reason:?}");
    }
    assert!(logs.contains("skipping a line from the WhatsApp bridge"));
    // Still running and answering.
    let id = bridge
        .transport
        .send(&group(), "still there?", Format::Plain, None)
        .await;
    assert!(id.is_ok(), "{id:?}");
    bridge.stop().await;
}

#[tokio::test]
async fn the_qr_code_is_surfaced_for_pairing() {
    let bridge = start("pair", |c| c.print_qr = true).await;
    bridge.until_phase(Phase::Pairing).await;
    let qr = bridge.link.qr().expect("a QR code for the dashboard");
    assert_eq!(qr.code, "2@FAKE-PAIRING-CODE,xyz");
    assert!(qr.at_ms > 0);
    assert!(
        logs().contains("2@FAKE-PAIRING-CODE,xyz"),
        "the code is logged"
    );
    assert_eq!(bridge.stats().await.qr_codes, 1);
    let err = bridge
        .transport
        .send(&group(), "hi", Format::Plain, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("scan the QR code"), "{err}");
    assert!(
        !bridge.log().contains("got "),
        "nothing sent before pairing"
    );
    let bridge = bridge.stop().await;
    assert_eq!(bridge.link.qr(), None, "a stopped bridge has no valid code");
}

#[tokio::test]
async fn stopping_the_actor_shuts_the_bridge_down_and_kills_its_group() {
    let bridge = start("normal", |_| {}).await;
    bridge.until_phase(Phase::Connected).await;
    let pids = bridge.pids();
    assert_eq!(pids.len(), 2, "the bridge and the child it left running");
    let bridge = bridge.stop().await;
    assert!(
        bridge.log().contains("bye"),
        "asked to shut down first: {}",
        bridge.log()
    );
    until_dead(&pids).await;
    let status = bridge.link.status();
    assert_eq!(status.phase, Phase::Stopped);
    let err = bridge
        .transport
        .send(&group(), "hi", Format::Plain, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");
}

#[tokio::test]
async fn a_crashed_bridge_is_restarted_by_the_supervisor() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let config = fake_config(dir.path(), "crash-once");
    let link = WhatsAppLink::new();
    let transport = WhatsAppTransport::new(link.clone(), WAIT);
    let (sink, mut inbox) = sink();
    let spec = SupervisorSpec {
        children: vec![
            WhatsAppBridge::child_spec(BridgeArgs {
                config,
                link: link.clone(),
                sink,
            })
            .backoff(Backoff::none()),
        ],
        ..SupervisorSpec::default()
    };
    let introspection = Introspection::new();
    let (chat, _) = SupervisorRef::spawn_root("chat", spec, introspection.clone())
        .await
        .unwrap();
    assert_eq!(next_text(&mut inbox).await, "before the crash");
    assert_eq!(next_text(&mut inbox).await, "after the restart");

    let info = introspection
        .list()
        .into_iter()
        .find(|a| a.path.ends_with("transport:whatsapp"))
        .unwrap();
    assert_eq!(info.restarts, 1);
    let failure = info.last_failure.unwrap_or_default();
    assert!(
        failure.contains("exit status: 3") && failure.contains("crashing on purpose"),
        "{failure}"
    );
    // The restarted bridge is the one the transport reaches.
    let mut status = link.subscribe();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.phase == Phase::Connected))
        .await
        .unwrap()
        .unwrap();
    transport
        .send(&group(), "welcome back", Format::Plain, None)
        .await
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let first_child: i32 = log
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .unwrap()
        .parse()
        .unwrap();
    until_dead(&[first_child]).await;
    chat.shutdown().await;
}

#[tokio::test]
async fn a_logged_out_session_is_moved_aside_for_a_new_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth");
    std::fs::create_dir(&auth).unwrap();
    std::fs::write(auth.join("creds.json"), "{}").unwrap();
    let config = fake_config(dir.path(), "logged-out");
    let (why, dir) = start_with(config, dir).await.failure().await;
    assert!(
        why.contains("logged this device out") && why.contains("code 401"),
        "{why}"
    );
    assert!(
        !auth.exists(),
        "the useless session is gone from WHATSAPP_AUTH_DIR"
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("auth.logged-out-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("creds.json").exists(), "moved, not deleted");
}

#[tokio::test]
async fn a_bridge_of_another_protocol_version_is_refused() {
    let (why, _dir) = start("old", |_| {}).await.failure().await;
    assert!(
        why.contains("protocol version 99") && why.contains("WHATSAPP_BRIDGE_CMD"),
        "{why}"
    );
}

#[tokio::test]
async fn a_bridge_that_never_says_hello_is_given_up() {
    let (why, _dir) = start("silent", |c| c.hello_timeout = Duration::from_millis(500))
        .await
        .failure()
        .await;
    assert!(why.contains("did not say hello"), "{why}");
}

#[tokio::test]
async fn the_real_bridge_scripts_pass_node_check() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let main = write_script(dir.path());
    for script in [main, dir.path().join("selftest.mjs")] {
        let out = std::process::Command::new(node)
            .arg("--check")
            .arg(&script)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", script.display());
    }
}

/// The contract test: the real script, its Baileys socket swapped for a scripted one, against
/// the real actor and transport.
#[tokio::test]
async fn the_real_bridge_script_speaks_the_protocol() {
    let Some(node) = node() else { return };
    logs();
    let dir = tempfile::tempdir().unwrap();
    let args = vec![
        write_script(dir.path()).display().to_string(),
        "--self-test".into(),
    ];
    let mut config = WhatsAppConfig::with_command(dir.path().join("auth"), node, args);
    config.print_qr = false;
    let mut bridge = start_with(config, dir).await;

    let mention = bridge.next().await;
    assert_eq!(
        (mention.message_id.as_str(), mention.chat.0.as_str()),
        ("SAMPLE1", GROUP)
    );
    assert!(
        mention.mentions_bot,
        "mentioned by the bot's lid: {mention:?}"
    );
    assert_eq!(
        (mention.chat_title.as_str(), mention.sender_id.as_str()),
        ("Self-test group", "wa:4915111111111@s.whatsapp.net")
    );
    let private = bridge.next().await;
    assert_eq!(
        (private.text.as_str(), private.private),
        ("hello in private", true)
    );
    assert_eq!(
        (private.chat_title.as_str(), private.at_ms),
        ("Grace", 1_700_000_001_000)
    );
    let reply = bridge.next().await;
    assert_eq!(
        (reply.text.as_str(), reply.reply_to_bot, reply.mentions_bot),
        ("what about this?", true, false)
    );
    bridge.until_phase(Phase::Connected).await;
    let stats = bridge.stats().await;
    assert_eq!(
        (stats.delivered, stats.qr_codes, stats.malformed),
        (3, 1, 0),
        "{stats:?}"
    );
    assert_eq!(
        bridge.link.status().me.as_deref(),
        Some("15550001111@s.whatsapp.net")
    );

    let t = &bridge.transport;
    assert_eq!(
        t.send(&group(), "on it", Format::Markdown, Some("SAMPLE1"))
            .await
            .unwrap(),
        "SELFTEST1"
    );
    t.edit(&group(), "SELFTEST1", "done").await.unwrap();
    t.typing(&group()).await.unwrap();
    let refused = t.send(&group(), "please fail", Format::Plain, None).await;
    assert_eq!(
        refused,
        Err(TransportError::ChatUnavailable("forbidden".into()))
    );
    let pid = bridge.stats().await.pid.unwrap() as i32;
    let bridge = bridge.stop().await;
    until_dead(&[pid]).await;
    assert!(
        logs().contains(r#""quoted":"SAMPLE1""#),
        "the reply quoted the message it answers"
    );
    assert!(
        bridge.inbox.is_empty(),
        "the append (history) copy and the reaction were not delivered"
    );
}

/// borg's own install path: npm (a stand-in here) fills the bridge directory, then node runs
/// the script written there, which reports that it cannot load the (stand-in) Baileys.
#[tokio::test]
async fn node_mode_installs_with_npm_then_runs_the_written_script() {
    let Some(_) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let npm = dir.path().join("fake-npm");
    std::fs::write(&npm, format!(
        "#!/bin/sh\nfor p in @whiskeysockets/baileys:{} qrcode-terminal:{}; do\n  mkdir -p node_modules/${{p%:*}}\n  echo \"{{\\\"version\\\":\\\"${{p#*:}}\\\"}}\" > node_modules/${{p%:*}}/package.json\ndone\n",
        borg::whatsapp::BAILEYS_VERSION, borg::whatsapp::QRCODE_TERMINAL_VERSION)).unwrap();
    std::fs::set_permissions(&npm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut config = WhatsAppConfig::with_node(dir.path().join("auth"));
    if let borg::whatsapp::BridgeProgram::Node { npm: n, .. } = &mut config.bridge {
        *n = npm;
    }
    let (why, dir) = start_with(config, dir).await.failure().await;
    assert!(why.contains("cannot load Baileys"), "{why}");
    let written = std::fs::read_to_string(dir.path().join("whatsapp-bridge/bridge.mjs")).unwrap();
    assert_eq!(written, BRIDGE_SCRIPT);
}
