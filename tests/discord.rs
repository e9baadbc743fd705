//! The Discord adapter end to end: the real serenity client (REST and gateway) against a fake
//! Discord on 127.0.0.1 (`support/fake_discord.rs`), with the gateway as a real ractor actor.

#[path = "support/fake_discord.rs"]
mod fake_discord;

use std::sync::Arc;
use std::time::Duration;

use actors::chat::{
    ChatId, ChatTransport, Format, InboundSink, IncomingMessage, Taken, TransportError,
};
use borg::discord::{
    DiscordConfig, DiscordGateway, DiscordTransport, GatewayArgs, GatewayMsg, GatewayStats,
};
use fake_discord::{BOT_ID, BOT_NAME, FakeDiscord, message_json, user_json};
use ractor::{Actor, ActorRef};
use serde_json::{Value, json};
use supervisors::{Intensity, Introspection, SupervisorRef, SupervisorSpec};
use tokio::sync::mpsc;

const TOKEN: &str = "test-token.discord";
const GUILD: u64 = 777;
const CHANNEL: u64 = 555;
const WAIT: Duration = Duration::from_secs(10);

fn config(fake: &FakeDiscord) -> DiscordConfig {
    DiscordConfig::new(TOKEN).with_api_url(&fake.api_url)
}

fn args(fake: &FakeDiscord) -> (GatewayArgs, mpsc::UnboundedReceiver<IncomingMessage>) {
    let (tx, inbox) = mpsc::unbounded_channel();
    let sink: InboundSink = Arc::new(move |m| {
        let _ = tx.send(m);
        // Kept at once: this channel is the test's durable record.
        let (taken, receipt) = Taken::pair();
        taken.kept();
        receipt
    });
    (GatewayArgs::new(config(fake), sink), inbox)
}

struct Gateway {
    actor: ActorRef<GatewayMsg>,
    inbox: mpsc::UnboundedReceiver<IncomingMessage>,
}

async fn start_gateway(fake: &FakeDiscord) -> Gateway {
    let (args, inbox) = args(fake);
    let (actor, _) = Actor::spawn(None, DiscordGateway, args)
        .await
        .expect("gateway starts");
    Gateway { actor, inbox }
}

async fn next(inbox: &mut mpsc::UnboundedReceiver<IncomingMessage>) -> IncomingMessage {
    tokio::time::timeout(WAIT, inbox.recv())
        .await
        .expect("a message within 10 s")
        .expect("sink alive")
}

async fn stats_of(actor: &ActorRef<GatewayMsg>) -> GatewayStats {
    ractor::call!(actor, GatewayMsg::Stats).expect("gateway answers")
}

impl Gateway {
    async fn next(&mut self) -> IncomingMessage {
        next(&mut self.inbox).await
    }

    async fn stats(&self) -> GatewayStats {
        stats_of(&self.actor).await
    }

    /// Waits for counters that satisfy `check`: events are handled in serenity's tasks, so
    /// one may reach the actor after a later one.
    async fn stats_until(&self, what: &str, check: impl Fn(&GatewayStats) -> bool) -> GatewayStats {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if check(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {what}: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.actor
            .stop_and_wait(None, Some(WAIT))
            .await
            .expect("gateway stops");
    }
}

fn human() -> Value {
    let mut ada = user_json(42, "ada", false);
    ada["global_name"] = json!("Ada Lovelace");
    ada
}

fn bot() -> Value {
    user_json(BOT_ID, BOT_NAME, true)
}

fn guild_message(id: u64, text: &str, extra: Value) -> Value {
    let mut message = message_json(id, CHANNEL, Some(GUILD), human(), text);
    message
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    message
}

#[tokio::test]
async fn identify_sends_the_message_content_intent() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gateway = start_gateway(&fake).await;
    fake.wait_until("an IDENTIFY", |f| !f.identifies().is_empty())
        .await;
    let identify = &fake.identifies()[0];
    let intents = identify["intents"].as_u64().expect("intents sent");
    let (guild_messages, direct_messages, message_content) = (1 << 9, 1 << 12, 1 << 15);
    assert_eq!(
        intents & (guild_messages | direct_messages | message_content),
        guild_messages | direct_messages | message_content,
        "intents {intents:#b}"
    );
    assert_eq!(identify["token"], format!("Bot {TOKEN}"));
    let requests = fake.requests();
    assert_eq!(requests[0], "GET /api/v10/users/@me", "{requests:?}");
    assert!(requests.contains(&"GET /api/v10/gateway/bot".to_owned()));
    assert!(
        fake.unknown_routes().is_empty(),
        "{:?}",
        fake.unknown_routes()
    );
    gateway.stop().await;
}

#[tokio::test]
async fn heartbeats_are_acknowledged_and_the_session_holds() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gateway = start_gateway(&fake).await;
    fake.wait_until("two heartbeats", |f| f.heartbeats() >= 2)
        .await;
    // An unacknowledged heartbeat would make serenity drop the session and log in again.
    let stats = gateway.stats().await;
    assert!(stats.connected, "{stats:?}");
    assert_eq!((stats.sessions, stats.resumes), (1, 0));
    assert_eq!(fake.identifies().len(), 1);
    gateway.stop().await;
}

#[tokio::test]
async fn guild_mention_is_delivered_with_mentions_bot() {
    let fake = FakeDiscord::start(TOKEN).await;
    let mut gateway = start_gateway(&fake).await;
    let mention = guild_message(
        1001,
        &format!("<@{BOT_ID}> please look"),
        json!({"mentions": [bot()]}),
    );
    fake.push_message_create(mention).await;
    let got = gateway.next().await;
    assert!(got.mentions_bot, "{got:?}");
    assert!(!got.private && !got.reply_to_bot);
    assert_eq!(got.chat, ChatId(format!("discord:{CHANNEL}")));
    assert_eq!(
        (got.sender_id.as_str(), got.sender_name.as_str()),
        ("discord:42", "Ada Lovelace")
    );
    assert_eq!(got.message_id, "1001");
    assert_eq!(got.text, format!("@{BOT_NAME} please look"));

    let other = guild_message(
        1002,
        "<@43> and you?",
        json!({"mentions": [user_json(43, "grace", false)]}),
    );
    fake.push_message_create(other).await;
    let got = gateway.next().await;
    assert!(!got.mentions_bot, "a mention of someone else: {got:?}");
    assert_eq!(got.text, "@grace and you?");
    gateway.stop().await;
}

#[tokio::test]
async fn direct_message_is_private() {
    let fake = FakeDiscord::start(TOKEN).await;
    // The gateway named in the settings is used as is, without asking /gateway/bot.
    let (mut args, mut inbox) = args(&fake);
    args.config = config(&fake).with_gateway_url(&fake.gateway_url);
    let (actor, _) = Actor::spawn(None, DiscordGateway, args).await.unwrap();
    fake.push_message_create(message_json(1003, 888, None, human(), "hi"))
        .await;
    let got = next(&mut inbox).await;
    assert!(got.private, "{got:?}");
    assert_eq!(
        (got.chat.0.as_str(), got.chat_title.as_str()),
        ("discord:888", "Ada Lovelace")
    );
    assert!(!fake.requests().iter().any(|r| r.ends_with("/gateway/bot")));
    actor.stop_and_wait(None, Some(WAIT)).await.unwrap();
}

#[tokio::test]
async fn reply_to_the_bot_is_marked() {
    let fake = FakeDiscord::start(TOKEN).await;
    let mut gateway = start_gateway(&fake).await;
    let reply = |id: u64, author: Value| {
        let earlier = message_json(900, CHANNEL, Some(GUILD), author, "earlier");
        guild_message(
            id,
            "and now?",
            json!({"type": 19, "referenced_message": earlier,
                   "message_reference": {"message_id": "900", "channel_id": CHANNEL.to_string()}}),
        )
    };
    fake.push_message_create(reply(1004, bot())).await;
    let got = gateway.next().await;
    assert!(got.reply_to_bot, "{got:?}");
    fake.push_message_create(reply(1005, user_json(43, "grace", false)))
        .await;
    assert!(
        !gateway.next().await.reply_to_bot,
        "a reply to someone else"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn messages_from_the_bot_itself_and_other_bots_are_ignored() {
    let fake = FakeDiscord::start(TOKEN).await;
    let mut gateway = start_gateway(&fake).await;
    let own = message_json(1006, CHANNEL, Some(GUILD), bot(), "my own answer <@999>");
    let other_bot = message_json(
        1007,
        CHANNEL,
        Some(GUILD),
        user_json(5, "ci", true),
        "build ok",
    );
    fake.push_message_create(own).await;
    fake.push_message_create(other_bot).await;
    fake.push_message_create(guild_message(1008, "a person", json!({})))
        .await;
    assert_eq!(gateway.next().await.text, "a person");
    gateway
        .stats_until("saw both bot messages", |s| s.ignored == 2)
        .await;
    assert!(
        gateway.inbox.try_recv().is_err(),
        "no bot message delivered"
    );
    assert_eq!(gateway.stats().await.delivered, 1);
    gateway.stop().await;
}

fn channel() -> ChatId {
    ChatId(format!("discord:{CHANNEL}"))
}

#[tokio::test]
async fn send_edit_and_typing_reach_discord() {
    let fake = FakeDiscord::start(TOKEN).await;
    let transport = DiscordTransport::new(&config(&fake)).unwrap();
    let id = transport
        .send(
            &channel(),
            "**done**: see `a_b`",
            Format::Markdown,
            Some("1001"),
        )
        .await
        .unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].content, "**done**: see `a_b`",
        "Discord renders Markdown itself"
    );
    assert_eq!(
        (sent[0].channel_id, sent[0].reply_to),
        (CHANNEL, Some(1001))
    );
    assert_eq!(sent[0].fail_if_not_exists, Some(false));
    // Nobody is pinged but the person replied to, whatever the text says.
    assert_eq!(sent[0].allowed_mentions["parse"], json!([]));
    assert_eq!(sent[0].allowed_mentions["replied_user"], json!(true));
    assert_eq!(id, sent[0].message_id.to_string());

    transport.edit(&channel(), &id, "done, 100%").await.unwrap();
    let sent = fake.sent();
    assert_eq!((sent[0].content.as_str(), sent[0].edits), ("done, 100%", 1));

    transport.typing(&channel()).await.unwrap();
    assert_eq!(fake.typing(), [CHANNEL]);
    assert!(
        fake.unknown_routes().is_empty(),
        "{:?}",
        fake.unknown_routes()
    );
}

#[tokio::test]
async fn long_answer_is_split_at_2000() {
    let fake = FakeDiscord::start(TOKEN).await;
    let transport = DiscordTransport::new(&config(&fake)).unwrap();
    let text = "a line with an emoji 🎉 and some words\n".repeat(130); // ~5,200 chars
    let id = transport
        .send(&channel(), &text, Format::Plain, Some("9"))
        .await
        .unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|s| s.content.chars().count() <= 2000));
    assert_eq!(
        sent.iter().map(|s| s.content.as_str()).collect::<String>(),
        text
    );
    let replies: Vec<_> = sent.iter().map(|s| s.reply_to).collect();
    assert_eq!(replies, [Some(9), None, None]);
    assert_eq!(id, sent[2].message_id.to_string());

    // An edit cannot become two messages: it keeps what fits.
    transport.edit(&channel(), &id, &text).await.unwrap();
    assert!(fake.sent()[2].content.chars().count() <= 2000);
}

#[tokio::test]
async fn errors_map_to_the_port_classes() {
    let fake = FakeDiscord::start(TOKEN).await;
    let transport = DiscordTransport::new(&config(&fake)).unwrap();
    fake.rate_limit_sends(1);
    let limited = transport.send(&channel(), "hi", Format::Plain, None).await;
    assert!(
        matches!(limited, Err(TransportError::RateLimited { retry_after_s }) if retry_after_s > 0),
        "{limited:?}"
    );
    transport
        .send(&channel(), "hi", Format::Plain, None)
        .await
        .expect("limit over");

    fake.forget_channel(5);
    let gone = transport.typing(&ChatId("discord:5".into())).await;
    assert!(
        matches!(gone, Err(TransportError::ChatUnavailable(_))),
        "{gone:?}"
    );
    fake.deny_channel(6);
    let denied = transport
        .send(&ChatId("discord:6".into()), "hi", Format::Plain, None)
        .await;
    assert!(
        matches!(denied, Err(TransportError::ChatUnavailable(_))),
        "{denied:?}"
    );
    let not_discord = transport.typing(&ChatId("tg:5".into())).await;
    assert!(matches!(
        not_discord,
        Err(TransportError::ChatUnavailable(_))
    ));

    let stranger =
        DiscordTransport::new(&DiscordConfig::new("wrong").with_api_url(&fake.api_url)).unwrap();
    match stranger.send(&channel(), "hi", Format::Plain, None).await {
        Err(TransportError::Unavailable(why)) => assert!(why.contains("DISCORD_TOKEN"), "{why}"),
        other => panic!("expected Unavailable naming the token, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_token_fails_the_start_naming_the_setting() {
    let fake = FakeDiscord::start(TOKEN).await;
    let (mut args, _inbox) = args(&fake);
    args.config = DiscordConfig::new("wrong").with_api_url(&fake.api_url);
    let err = Actor::spawn(None, DiscordGateway, args)
        .await
        .expect_err("start must fail");
    let message = err.to_string();
    assert!(message.contains("DISCORD_TOKEN"), "{message}");
    assert!(
        fake.identifies().is_empty(),
        "no gateway login with a refused token"
    );
}

#[tokio::test]
async fn stopping_the_actor_closes_the_gateway_connection() {
    let fake = FakeDiscord::start(TOKEN).await;
    let gateway = start_gateway(&fake).await;
    fake.wait_until("a session", |f| f.live_sessions() == 1)
        .await;
    gateway.stop().await;
    fake.wait_until("the connection closed", |f| f.live_sessions() == 0)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.identifies().len(),
        1,
        "a stopped gateway does not log in again"
    );
}

#[tokio::test]
async fn a_dropped_socket_is_resumed_and_messages_flow_again() {
    let fake = FakeDiscord::start(TOKEN).await;
    let mut gateway = start_gateway(&fake).await;
    fake.push_message_create(guild_message(1, "A", json!({})))
        .await;
    assert_eq!(gateway.next().await.text, "A");

    fake.drop_connections();
    fake.wait_until("a RESUME", |f| f.resumes() == 1).await;
    fake.push_message_create(guild_message(2, "B", json!({})))
        .await;
    assert_eq!(gateway.next().await.text, "B");
    let stats = gateway.stats_until("resumed", |s| s.resumes == 1).await;
    assert_eq!(
        (stats.sessions, stats.delivered),
        (1, 2),
        "resumed, not logged in again"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn supervised_gateway_restarts_when_the_gateway_stays_down() {
    let fake = FakeDiscord::start(TOKEN).await;
    let (mut args, mut inbox) = args(&fake);
    args.reconnect_grace = Duration::from_secs(1);
    let spec = SupervisorSpec {
        intensity: Intensity {
            max_restarts: 20,
            period: Duration::from_secs(10),
        },
        children: vec![DiscordGateway::child_spec(args)],
        ..SupervisorSpec::default()
    };
    let (chat, _) = SupervisorRef::spawn_root("chat", spec, Introspection::new())
        .await
        .unwrap();
    fake.push_message_create(guild_message(1, "A", json!({})))
        .await;
    assert_eq!(next(&mut inbox).await.text, "A");
    let before = chat
        .child("transport:discord")
        .await
        .unwrap()
        .expect("running");

    // Down for longer than the grace: serenity keeps retrying, the actor gives up.
    fake.refuse_gateway(true);
    fake.drop_connections();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "never restarted");
        let now = chat.child("transport:discord").await.unwrap();
        if now.is_some_and(|c| c.get_id() != before.get_id()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.refuse_gateway(false);
    // Wait for an incarnation with a live session of its own before pushing.
    let after = loop {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        if let Ok(Some(cell)) = chat.child("transport:discord").await {
            let actor: ActorRef<GatewayMsg> = cell.into();
            if ractor::call!(actor, GatewayMsg::Stats).is_ok_and(|s| s.sessions >= 1) {
                break actor;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(before.get_id(), after.get_id());
    fake.push_message_create(guild_message(2, "B", json!({})))
        .await;
    assert_eq!(next(&mut inbox).await.text, "B");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.try_recv().is_err(), "nothing delivered twice");
    assert_eq!(stats_of(&after).await.delivered, 1);
    // The first incarnation's shard queuer was mid-restart when it stopped, and retries every
    // 5 s: its late session must be closed rather than left open beside the live one.
    tokio::time::sleep(Duration::from_secs(7)).await;
    fake.wait_until("only the live incarnation's session", |f| {
        f.live_sessions() == 1
    })
    .await;
    chat.shutdown().await;
}
