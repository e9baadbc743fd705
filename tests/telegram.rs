//! The Telegram adapter end to end: the real teloxide client against a fake Bot API on
//! 127.0.0.1 (`support/fake_telegram.rs`), with the poller as a real ractor actor.

#[path = "support/fake_telegram.rs"]
mod fake_telegram;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::chat::{
    ChatId, ChatTransport, Format, InboundSink, IncomingMessage, Taken, TransportError,
};
use borg::telegram::{
    OFFSET_KEY, PollerArgs, PollerMsg, PollerStats, TelegramConfig, TelegramOffset, TelegramPoller,
    TelegramTransport,
};
use fake_telegram::{BOT_ID, BOT_USERNAME, FakeTelegram};
use ractor::{Actor, ActorRef};
use serde_json::{Value, json};
use supervisors::snapshot::{self, MemoryStore, SnapshotStore};
use supervisors::{Introspection, SupervisorRef, SupervisorSpec};
use tokio::sync::mpsc;

const TOKEN: &str = "123456:TEST-token";
const GROUP: i64 = -100_777;
const WAIT: Duration = Duration::from_secs(10);

fn config(fake: &FakeTelegram) -> TelegramConfig {
    TelegramConfig::new(TOKEN).with_api_url(&fake.url)
}

struct Poller {
    actor: ActorRef<PollerMsg>,
    inbox: mpsc::UnboundedReceiver<IncomingMessage>,
    store: Arc<MemoryStore>,
    /// Whether the sink keeps what it is given (as the router does once a group saved it).
    keep: Arc<AtomicBool>,
}

/// The poller's arguments, with a sink that sends every message to the returned channel and
/// keeps it while the returned switch is on (it starts on).
fn args(
    fake: &FakeTelegram,
    store: Arc<MemoryStore>,
) -> (
    PollerArgs,
    mpsc::UnboundedReceiver<IncomingMessage>,
    Arc<AtomicBool>,
) {
    let (tx, inbox) = mpsc::unbounded_channel();
    let keep = Arc::new(AtomicBool::new(true));
    let keeping = keep.clone();
    let sink: InboundSink = Arc::new(move |m| {
        let (taken, receipt) = Taken::pair();
        let _ = tx.send(m);
        if keeping.load(Ordering::SeqCst) {
            taken.kept();
        }
        receipt
    });
    let mut args = PollerArgs::new(config(fake), store, sink);
    // Short polls keep the tests quick; the long-poll path is the same.
    args.poll_timeout = Duration::from_secs(1);
    (args, inbox, keep)
}

async fn start_poller(fake: &FakeTelegram, store: Arc<MemoryStore>) -> Poller {
    let (args, inbox, keep) = args(fake, store.clone());
    let (actor, _) = Actor::spawn(None, TelegramPoller, args)
        .await
        .expect("poller starts");
    Poller {
        actor,
        inbox,
        store,
        keep,
    }
}

impl Poller {
    async fn next(&mut self) -> IncomingMessage {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a message within 10 s")
            .expect("sink alive")
    }

    async fn stats(&self) -> PollerStats {
        ractor::call!(self.actor, PollerMsg::Stats).expect("poller answers")
    }

    /// Waits until the poller has moved its offset to `offset` (it does once a batch is kept).
    async fn offset_reaches(&self, offset: i64) -> PollerStats {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if i64::from(stats.offset) == offset {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "offset stuck at {} (want {offset})",
                stats.offset
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.actor
            .stop_and_wait(None, Some(WAIT))
            .await
            .expect("poller stops");
    }
}

fn user(id: i64, first: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": first})
}

fn group_message(id: i64, text: &str, extra: Value) -> Value {
    let mut message = json!({
        "message_id": id, "date": 1_700_000_000, "text": text,
        "chat": {"id": GROUP, "type": "supergroup", "title": "Builders"},
        "from": user(42, "Ada"),
    });
    message
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"message": message})
}

/// A `mention` entity for `needle` in `text`, with Telegram's UTF-16 offsets.
fn mention_entity(text: &str, needle: &str) -> Value {
    let start = text.find(needle).unwrap();
    let offset = text[..start].encode_utf16().count();
    json!({"type": "mention", "offset": offset, "length": needle.encode_utf16().count()})
}

#[tokio::test]
async fn start_asks_get_me_then_long_polls() {
    let fake = FakeTelegram::start(TOKEN).await;
    let poller = start_poller(&fake, Arc::default()).await;
    fake.wait_for_calls("getUpdates", 1).await;
    let calls = fake.calls();
    assert_eq!(calls[0].method, "getme", "getMe comes first: {calls:?}");
    let poll = &fake.calls_of("getUpdates")[0].params;
    assert_eq!(poll["timeout"], 1);
    assert_eq!(poll["allowed_updates"], json!(["message"]));
    assert!(
        fake.unknown_methods().is_empty(),
        "{:?}",
        fake.unknown_methods()
    );
    poller.stop().await;
}

#[tokio::test]
async fn group_mention_after_emoji_and_rtl_text_is_delivered() {
    let fake = FakeTelegram::start(TOKEN).await;
    let mut poller = start_poller(&fake, Arc::default()).await;
    // The emoji (2 UTF-16 units, 4 bytes) and Hebrew (2 bytes per letter) put the mention at
    // different byte, char and UTF-16 offsets: only UTF-16 slicing finds it.
    let text = format!(
        "🎉🎉 שלום לכולם @{} תבדוק את זה",
        BOT_USERNAME.to_uppercase()
    );
    let needle = format!("@{}", BOT_USERNAME.to_uppercase());
    let entity = mention_entity(&text, &needle);
    fake.push_update(group_message(1, &text, json!({"entities": [entity]})));
    let other = "🎉 @someone_else hi";
    fake.push_update(group_message(
        2,
        other,
        json!({"entities": [mention_entity(other, "@someone_else")]}),
    ));

    let got = poller.next().await;
    assert!(got.mentions_bot, "{got:?}");
    assert_eq!(got.text, text);
    assert_eq!(got.chat, ChatId(format!("tg:{GROUP}")));
    assert_eq!(got.chat_title, "Builders");
    assert_eq!(
        (got.sender_id.as_str(), got.sender_name.as_str()),
        ("tg:42", "Ada")
    );
    assert_eq!(got.message_id, "1");
    assert!(!got.private && !got.reply_to_bot);
    assert!(
        !poller.next().await.mentions_bot,
        "a mention of someone else is not one of the bot"
    );
    poller.stop().await;
}

#[tokio::test]
async fn reply_to_the_bot_is_marked() {
    let fake = FakeTelegram::start(TOKEN).await;
    let mut poller = start_poller(&fake, Arc::default()).await;
    let replied = |from: Value| {
        json!({"reply_to_message": {"message_id": 5, "date": 1_700_000_000, "text": "earlier",
            "chat": {"id": GROUP, "type": "supergroup", "title": "Builders"}, "from": from}})
    };
    let bot = json!({"id": BOT_ID, "is_bot": true, "first_name": "Borg", "username": BOT_USERNAME});
    fake.push_update(group_message(6, "and now?", replied(bot)));
    fake.push_update(group_message(7, "me too", replied(user(43, "Grace"))));
    assert!(poller.next().await.reply_to_bot);
    assert!(!poller.next().await.reply_to_bot, "a reply to someone else");
    poller.stop().await;
}

#[tokio::test]
async fn private_message_is_marked_private() {
    let fake = FakeTelegram::start(TOKEN).await;
    let mut poller = start_poller(&fake, Arc::default()).await;
    fake.push_update(json!({"message": {
        "message_id": 3, "date": 1_700_000_000, "text": "hello",
        "chat": {"id": 42, "type": "private", "first_name": "Ada", "last_name": "L"},
        "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "L"},
    }}));
    let got = poller.next().await;
    assert!(got.private);
    assert_eq!(
        (got.chat.0.as_str(), got.chat_title.as_str()),
        ("tg:42", "Ada L")
    );
    poller.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_updates_are_skipped_and_polling_continues() {
    let fake = FakeTelegram::start(TOKEN).await;
    // All in one batch: one update whose id is garbage makes teloxide reject the whole batch,
    // which the poller must salvage.
    fake.push_update(json!({"message": {"message_id": 1, "text": "no chat, no date"}}));
    fake.push_update(json!({"brand_new_update_kind": {"whatever": true}}));
    fake.push_update(json!({"update_id": "garbage", "message": {}}));
    fake.push_update(json!({"message": {"message_id": 2, "date": 1_700_000_000,
        "chat": {"id": GROUP, "type": "supergroup", "title": "Builders"}, "from": user(42, "Ada"),
        "sticker": {"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 1,
                    "height": 1, "is_animated": false, "is_video": false}}}));
    let good = fake.push_update(group_message(3, "still here", json!({})));
    let mut poller = start_poller(&fake, Arc::default()).await;

    assert_eq!(poller.next().await.text, "still here");
    let stats = poller.offset_reaches(good + 1).await;
    assert_eq!(
        (stats.malformed, stats.ignored, stats.delivered),
        (3, 1, 1),
        "{stats:?}"
    );

    fake.push_update(group_message(4, "and again", json!({})));
    assert_eq!(poller.next().await.text, "and again");
    assert_eq!(
        poller.stats().await.malformed,
        3,
        "skipped updates are not fetched again"
    );
    poller.stop().await;
}

#[tokio::test]
async fn offset_survives_a_restart_without_redelivery() {
    let fake = FakeTelegram::start(TOKEN).await;
    let store = Arc::new(MemoryStore::new());
    let mut first = start_poller(&fake, store.clone()).await;
    let a = fake.push_update(group_message(1, "A", json!({})));
    assert_eq!(first.next().await.text, "A");
    // The offset moves only once the batch is kept, and is saved before it moves.
    first.offset_reaches(a + 1).await;
    let saved = first
        .store
        .load(OFFSET_KEY)
        .await
        .unwrap()
        .expect("offset saved");
    let saved: TelegramOffset = snapshot::decode(&saved.bytes).unwrap();
    assert_eq!(saved.offset, a as i32 + 1);
    first.stop().await;

    let polls_before = fake.calls_of("getUpdates").len();
    fake.push_update(group_message(2, "B", json!({})));
    let mut second = start_poller(&fake, store).await;
    assert_eq!(second.next().await.text, "B", "A must not come again");
    let resumed = &fake.calls_of("getUpdates")[polls_before].params;
    assert_eq!(resumed["offset"], a + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(second.inbox.try_recv().is_err(), "nothing delivered twice");
    second.stop().await;
}

#[tokio::test]
async fn supervised_poller_resumes_after_a_crash() {
    let fake = FakeTelegram::start(TOKEN).await;
    let store = Arc::new(MemoryStore::new());
    let (args, mut inbox, _keep) = args(&fake, store);
    let spec = SupervisorSpec {
        children: vec![TelegramPoller::child_spec(args)],
        ..SupervisorSpec::default()
    };
    let (chat, _) = SupervisorRef::spawn_root("chat", spec, Introspection::new())
        .await
        .unwrap();
    fake.push_update(group_message(1, "A", json!({})));
    assert_eq!(
        tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap()
            .unwrap()
            .text,
        "A"
    );
    fake.wait_for_calls("getUpdates", 2).await; // the offset is saved before the next poll

    let before = chat
        .child("transport:telegram")
        .await
        .unwrap()
        .expect("running");
    before.kill();
    let polls_before = fake.calls_of("getUpdates").len();
    fake.wait_for_calls("getMe", 2).await; // restarted
    fake.push_update(group_message(2, "B", json!({})));
    assert_eq!(
        tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap()
            .unwrap()
            .text,
        "B"
    );
    let after = chat
        .child("transport:telegram")
        .await
        .unwrap()
        .expect("running");
    assert_ne!(before.get_id(), after.get_id());
    let polls = fake.calls_of("getUpdates");
    let resumed: Vec<_> = polls[polls_before..]
        .iter()
        .map(|c| c.params["offset"].clone())
        .collect();
    assert_eq!(
        resumed.first(),
        Some(&json!(2)),
        "the restart resumes after A: {resumed:?}"
    );
    assert!(inbox.try_recv().is_err(), "nothing delivered twice");
    chat.shutdown().await;
}

#[tokio::test]
async fn a_batch_not_kept_comes_again_and_the_offset_waits_for_it() {
    let fake = FakeTelegram::start(TOKEN).await;
    let store = Arc::new(MemoryStore::new());
    let mut poller = start_poller(&fake, store.clone()).await;
    let first = fake.push_update(group_message(1, "A", json!({})));
    poller.offset_reaches(first + 1).await;
    assert_eq!(poller.next().await.text, "A");

    // A chat that cannot save (a full disk): the message is handed over but not kept.
    poller.keep.store(false, Ordering::SeqCst);
    let b = fake.push_update(group_message(2, "B", json!({})));
    assert_eq!(poller.next().await.text, "B");
    assert_eq!(poller.next().await.text, "B", "asked for again");
    let stats = poller.stats().await;
    assert_eq!(
        stats.offset,
        first as i32 + 1,
        "the offset waits: {stats:?}"
    );
    assert!(stats.not_kept >= 1, "{stats:?}");
    let saved = store.load(OFFSET_KEY).await.unwrap().expect("offset saved");
    let saved: TelegramOffset = snapshot::decode(&saved.bytes).unwrap();
    assert_eq!(saved.offset, first as i32 + 1, "nothing past A is saved");
    let polls = fake.calls_of("getUpdates");
    assert!(
        polls
            .iter()
            .filter(|c| c.params["offset"] == json!(b))
            .count()
            >= 2,
        "Telegram was asked for B again: {polls:?}"
    );

    // Once it can be kept, it is, and the poller moves on past it for good.
    poller.keep.store(true, Ordering::SeqCst);
    poller.offset_reaches(b + 1).await;
    while poller.inbox.try_recv().is_ok() {}
    let c = fake.push_update(group_message(3, "C", json!({})));
    assert_eq!(poller.next().await.text, "C", "B does not come again");
    poller.offset_reaches(c + 1).await;
    poller.stop().await;
}

fn group() -> ChatId {
    ChatId(format!("tg:{GROUP}"))
}

#[tokio::test]
async fn markdown_goes_out_as_html_replying_to_the_message() {
    let fake = FakeTelegram::start(TOKEN).await;
    let transport = TelegramTransport::new(&config(&fake)).unwrap();
    let id = transport
        .send(&group(), "**done**: `a<b`", Format::Markdown, Some("5"))
        .await
        .unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "<b>done</b>: <code>a&lt;b</code>");
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!((sent[0].chat_id, sent[0].reply_to), (GROUP, Some(5)));
    assert_eq!(id, sent[0].message_id.to_string());
    assert_eq!(transport.format_fallbacks(), 0);
}

#[tokio::test]
async fn markdown_falls_back_to_plain_when_entities_are_refused() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.reject_parse_mode("HTML");
    let transport = TelegramTransport::new(&config(&fake)).unwrap();
    let text = "**bold** claim";
    let id = transport
        .send(&group(), text, Format::Markdown, None)
        .await
        .unwrap();
    let attempts = fake.calls_of("sendMessage");
    assert_eq!(attempts.len(), 2, "formatted first, then plain");
    assert_eq!(attempts[0].params["parse_mode"], "HTML");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].text.as_str(), sent[0].parse_mode.as_deref()),
        (text, None)
    );
    assert_eq!(id, sent[0].message_id.to_string());
    assert_eq!(transport.format_fallbacks(), 1);

    transport
        .send(&group(), "plain", Format::Plain, None)
        .await
        .unwrap();
    assert_eq!(
        transport.format_fallbacks(),
        1,
        "plain text needs no fallback"
    );
}

#[tokio::test]
async fn edit_and_typing_reach_telegram() {
    let fake = FakeTelegram::start(TOKEN).await;
    let transport = TelegramTransport::new(&config(&fake)).unwrap();
    let id = transport
        .send(&group(), "working…", Format::Plain, None)
        .await
        .unwrap();
    transport.edit(&group(), &id, "working… 50%").await.unwrap();
    assert_eq!(fake.sent()[0].text, "working… 50%");
    // Telegram calls an unchanged edit an error; progress updates repeat, so it is fine.
    transport.edit(&group(), &id, "working… 50%").await.unwrap();
    assert_eq!(fake.calls_of("editMessageText").len(), 2);

    transport.typing(&group()).await.unwrap();
    let typing = fake.calls_of("sendChatAction");
    assert_eq!(typing.len(), 1);
    assert_eq!(
        (
            typing[0].params["chat_id"].clone(),
            typing[0].params["action"].clone()
        ),
        (json!(GROUP), json!("typing"))
    );
}

#[tokio::test]
async fn errors_map_to_the_port_classes() {
    let fake = FakeTelegram::start(TOKEN).await;
    let transport = TelegramTransport::new(&config(&fake)).unwrap();
    fake.rate_limit("sendMessage", 7, 1);
    let limited = transport.send(&group(), "hi", Format::Plain, None).await;
    assert_eq!(
        limited,
        Err(TransportError::RateLimited { retry_after_s: 7 })
    );
    transport
        .send(&group(), "hi", Format::Plain, None)
        .await
        .expect("limit over");

    fake.forget_chat(-5);
    let gone = transport.typing(&ChatId("tg:-5".into())).await;
    assert!(
        matches!(gone, Err(TransportError::ChatUnavailable(_))),
        "{gone:?}"
    );

    let stranger =
        TelegramTransport::new(&TelegramConfig::new("1:wrong").with_api_url(&fake.url)).unwrap();
    match stranger.send(&group(), "hi", Format::Plain, None).await {
        Err(TransportError::Unavailable(why)) => {
            assert!(why.contains("TELEGRAM_BOT_TOKEN"), "{why}")
        }
        other => panic!("expected Unavailable naming the token, got {other:?}"),
    }
}

#[tokio::test]
async fn overlong_text_is_split_rather_than_refused() {
    let fake = FakeTelegram::start(TOKEN).await;
    let transport = TelegramTransport::new(&config(&fake)).unwrap();
    let text = "a line with an emoji 🎉 and some words\n".repeat(150); // ~5,800 units
    let id = transport
        .send(&group(), &text, Format::Plain, Some("9"))
        .await
        .unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.text.encode_utf16().count() <= 4096));
    assert_eq!(
        sent.iter().map(|s| s.text.as_str()).collect::<String>(),
        text
    );
    assert_eq!((sent[0].reply_to, sent[1].reply_to), (Some(9), None));
    assert_eq!(id, sent[1].message_id.to_string());
}

#[tokio::test]
async fn a_refused_token_fails_the_start_naming_the_setting() {
    let fake = FakeTelegram::start(TOKEN).await;
    let (mut args, _inbox, _keep) = args(&fake, Arc::default());
    args.config = TelegramConfig::new("123456:WRONG").with_api_url(&fake.url);
    let err = Actor::spawn(None, TelegramPoller, args)
        .await
        .expect_err("start must fail");
    let message = err.to_string();
    assert!(message.contains("TELEGRAM_BOT_TOKEN"), "{message}");
    assert!(
        fake.calls_of("getUpdates").is_empty(),
        "no polling with a refused token"
    );
}
