//! [`WhatsAppBridge`]: the receiving half of the WhatsApp adapter, supervised as
//! `transport:whatsapp`.
//!
//! `pre_start` returns at once and leaves the slow part to a task: creating the auth
//! directory and, for borg's own script, writing it out and installing its packages with npm
//! (a minute the first time). The task reports back; the actor then starts the bridge process
//! and attaches it to the [`WhatsAppLink`] the transport sends through. The bridge must say
//! `hello` with this borg's protocol version within `hello_timeout`.
//!
//! From then on every stdout line is an event: a QR code to show (printed to the terminal,
//! logged, and kept in the link for the dashboard), `ready`, messages for the inbound sink,
//! answers to the transport's requests. Lines that are not protocol events are logged with the
//! reason and skipped. The bridge ending (`closed`, or the process exiting) fails the actor, so
//! the supervisor's backoff and breaker decide when to try again. When WhatsApp unlinked the
//! device (`logged_out`), the useless session is moved aside first, so the restart shows a
//! new QR code instead of failing the same way forever.
//!
//! Stopping asks the bridge to `shutdown` (it saves the session) and waits `shutdown_grace`;
//! then, and on every other way out, the process group is killed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actors::chat::{InboundSink, TransportError, deliver_once};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use supervisors::{ChildSpec, StartCtx};
use tokio::sync::mpsc;

use super::convert::{WaIdentity, to_incoming};
use super::link::{PairingQr, Phase, WhatsAppLink, command_queue};
use super::process::{BridgeProcess, Launch, Output, Task};
use super::protocol::{BridgeCommand, BridgeEvent, ErrorClass, Malformed, PROTOCOL_VERSION};
use super::{BridgeProgram, WhatsAppConfig, install};

/// What the bridge actor needs; cloned for every (re)start.
#[derive(Clone)]
pub struct BridgeArgs {
    pub config: WhatsAppConfig,
    pub link: WhatsAppLink,
    pub sink: InboundSink,
}

/// The bridge actor's messages. Only `Stats` is for others; the rest is its own plumbing.
pub enum BridgeMsg {
    /// The preparation task finished: how to run the bridge, or why it cannot run.
    Prepared(Result<Launch, String>),
    /// A line of the bridge's stdout, or its exit.
    Output(Output),
    /// `hello_timeout` after the start.
    HelloDeadline,
    /// Counters since this incarnation started.
    Stats(RpcReplyPort<BridgeStats>),
}

/// Counters of one bridge incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// The bridge process, once started.
    pub pid: Option<u32>,
    /// Messages handed to the sink.
    pub delivered: u64,
    /// Messages without text.
    pub ignored: u64,
    /// Lines that were not protocol events, and the reason for the last one.
    pub malformed: u64,
    pub last_malformed: Option<String>,
    /// QR codes received while pairing.
    pub qr_codes: u64,
}

/// The bridge actor.
pub struct WhatsAppBridge;

/// The actor's state: its settings, its link, and the bridge process once it runs.
pub struct BridgeState {
    config: WhatsAppConfig,
    link: WhatsAppLink,
    sink: InboundSink,
    preparing: Option<Task>,
    process: Option<BridgeProcess>,
    /// This incarnation's way to its own bridge (for `shutdown`) and its link attachment.
    commands: Option<mpsc::Sender<BridgeCommand>>,
    attached: Option<u64>,
    hello: bool,
    me: WaIdentity,
    stats: BridgeStats,
}

impl WhatsAppBridge {
    /// The child spec for the chat supervisor: `transport:whatsapp`, restarted with the
    /// supervisor's backoff; add a breaker with [`ChildSpec::breaker`].
    pub fn child_spec(args: BridgeArgs) -> ChildSpec {
        ChildSpec::new("transport:whatsapp", move |ctx: StartCtx| {
            let args = args.clone();
            async move { ctx.spawn(WhatsAppBridge, args).await.map(Some) }
        })
        .kind("transport")
    }
}

impl Actor for WhatsAppBridge {
    type Msg = BridgeMsg;
    type State = BridgeState;
    type Arguments = BridgeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BridgeMsg>,
        args: BridgeArgs,
    ) -> Result<BridgeState, ActorProcessingErr> {
        let phase = match args.config.bridge {
            BridgeProgram::Node { .. } => Phase::Installing,
            BridgeProgram::Command { .. } => Phase::Starting,
        };
        args.link.update_status(|s| s.phase = phase);
        let config = args.config.clone();
        let preparing = tokio::spawn(async move {
            let launch = install::launch(&config).await;
            // The actor may have stopped meanwhile; then nobody wants the answer.
            let _ = myself.cast(BridgeMsg::Prepared(launch));
        });
        Ok(BridgeState {
            config: args.config,
            link: args.link,
            sink: args.sink,
            preparing: Some(Task(preparing)),
            process: None,
            commands: None,
            attached: None,
            hello: false,
            me: WaIdentity::default(),
            stats: BridgeStats::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<BridgeMsg>,
        msg: BridgeMsg,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        let result = state.handle(&myself, msg).await;
        if let Err(e) = &result {
            // ractor skips `post_stop` after a failed handler; the drop of the state kills
            // the process, and this tells the transport why.
            state.detach(&e.to_string());
        }
        result
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BridgeMsg>,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        state.preparing = None;
        if let Some(commands) = state.commands.take() {
            // Lets the bridge save the session before it is killed.
            let _ = commands.try_send(BridgeCommand::Shutdown);
        }
        state.detach("it was stopped");
        if let Some(process) = state.process.as_mut()
            && process
                .exited_within(state.config.shutdown_grace)
                .await
                .is_none()
        {
            tracing::warn!("the WhatsApp bridge did not exit after shutdown; killing it");
        }
        state.process = None;
        Ok(())
    }
}

impl BridgeState {
    async fn handle(
        &mut self,
        myself: &ActorRef<BridgeMsg>,
        msg: BridgeMsg,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BridgeMsg::Prepared(Ok(launch)) => self.start(myself, &launch)?,
            BridgeMsg::Prepared(Err(why)) => return Err(why.into()),
            BridgeMsg::Output(Output::Event(event)) => self.on_event(event)?,
            BridgeMsg::Output(Output::Malformed(why)) => self.skip(why),
            BridgeMsg::Output(Output::Exited(status)) => {
                return Err(self.exited(status).await.into());
            }
            BridgeMsg::HelloDeadline if !self.hello => {
                return Err(format!(
                    "the WhatsApp bridge did not say hello within {:?} ({}); last stderr: {}",
                    self.config.hello_timeout,
                    self.config.bridge.describe(),
                    self.stderr_tail()
                )
                .into());
            }
            BridgeMsg::HelloDeadline => {}
            BridgeMsg::Stats(reply) => {
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(self.stats.clone());
            }
        }
        Ok(())
    }

    fn start(&mut self, myself: &ActorRef<BridgeMsg>, launch: &Launch) -> Result<(), String> {
        self.preparing = None;
        let (commands, queue) = command_queue();
        let actor = myself.clone();
        let report = move |output| {
            let _ = actor.cast(BridgeMsg::Output(output));
        };
        let process = BridgeProcess::spawn(launch, queue, report).map_err(|e| {
            format!(
                "cannot start the WhatsApp bridge {} ({e}); {}",
                launch.program.display(),
                self.config.bridge.fix_hint()
            )
        })?;
        self.stats.pid = process.pid();
        tracing::info!(pid = ?self.stats.pid, bridge = %self.config.bridge.describe(),
            auth_dir = %self.config.auth_dir.display(), "WhatsApp bridge started");
        self.process = Some(process);
        self.attached = Some(self.link.attach(commands.clone()));
        self.commands = Some(commands);
        self.link.update_status(|s| s.phase = Phase::Starting);
        myself.send_after(self.config.hello_timeout, || BridgeMsg::HelloDeadline);
        Ok(())
    }

    fn on_event(&mut self, event: BridgeEvent) -> Result<(), String> {
        if !self.hello && !matches!(event, BridgeEvent::Hello { .. }) {
            self.skip(Malformed(format!("an event before hello: {event:?}")));
            return Ok(());
        }
        match event {
            BridgeEvent::Hello { version } if version != PROTOCOL_VERSION => {
                return Err(format!(
                    "the WhatsApp bridge speaks protocol version {version}, this borg speaks \
                     {PROTOCOL_VERSION}; {}",
                    self.config.bridge.fix_hint()
                ));
            }
            BridgeEvent::Hello { .. } => self.hello = true,
            BridgeEvent::Qr { code, terminal } => self.show_qr(code, terminal),
            BridgeEvent::Ready { me, lid, name } => {
                tracing::info!(%me, ?lid, ?name, "WhatsApp connected");
                self.me = WaIdentity {
                    me: me.clone(),
                    lid,
                };
                self.link.update_status(|s| {
                    s.phase = Phase::Connected;
                    s.me = Some(me);
                    s.qr = None;
                    s.last_error = None;
                });
            }
            BridgeEvent::Message(message) => match to_incoming(&message, &self.me) {
                Some(incoming) => {
                    self.stats.delivered += 1;
                    deliver_once(&self.sink, incoming);
                }
                None => self.stats.ignored += 1,
            },
            BridgeEvent::Sent { req, id } => {
                if !self.link.resolve(req, Ok(id)) {
                    tracing::debug!(
                        req,
                        "a WhatsApp send was confirmed after its caller gave up"
                    );
                }
            }
            BridgeEvent::Error {
                req,
                message,
                class,
            } => self.on_error(req, message, class),
            BridgeEvent::Closed {
                reason,
                logged_out: true,
            } => return Err(self.logged_out(&reason)),
            BridgeEvent::Closed { reason, .. } => {
                return Err(format!("the WhatsApp connection closed: {reason}"));
            }
        }
        Ok(())
    }

    fn on_error(&self, req: Option<u64>, message: String, class: ErrorClass) {
        let answered = req.is_some_and(|req| {
            let error = match class {
                ErrorClass::ChatUnavailable => TransportError::ChatUnavailable(message.clone()),
                // WhatsApp names no wait; a minute is what its rate limits usually need.
                ErrorClass::RateLimited => TransportError::RateLimited { retry_after_s: 60 },
                ErrorClass::Unavailable => TransportError::Unavailable(message.clone()),
            };
            self.link.resolve(req, Err(error))
        });
        if !answered {
            tracing::warn!(?req, ?class, "the WhatsApp bridge reports: {message}");
        }
    }

    fn show_qr(&mut self, code: String, terminal: Option<String>) {
        self.stats.qr_codes += 1;
        tracing::info!(%code, "WhatsApp is not paired: scan the QR code printed below with \
            WhatsApp → Settings → Linked devices → Link a device");
        if self.config.print_qr {
            let drawn = terminal.clone().unwrap_or_else(|| {
                format!("(no drawing available: encode this text as a QR code)\n{code}\n")
            });
            eprintln!(
                "\nWhatsApp pairing: open WhatsApp on your phone → Settings → Linked devices → \
                 Link a device, and scan:\n\n{drawn}"
            );
        }
        let qr = PairingQr {
            code,
            terminal,
            at_ms: now_ms(),
        };
        self.link.update_status(|s| {
            s.phase = Phase::Pairing;
            s.qr = Some(qr);
        });
    }

    /// WhatsApp unlinked this device: the saved session can only fail again. It is moved
    /// aside (not deleted: it is the user's data) so the restart pairs anew.
    fn logged_out(&self, reason: &str) -> String {
        let auth = &self.config.auth_dir;
        let name = auth
            .file_name()
            .map_or("whatsapp-auth".into(), |n| n.to_string_lossy());
        let aside = auth.with_file_name(format!("{name}.logged-out-{}", now_ms()));
        let moved = match std::fs::rename(auth, &aside) {
            Ok(()) => format!("the old session was moved to {}", aside.display()),
            Err(e) => format!(
                "moving the old session aside failed ({e}): delete {} to pair again",
                auth.display()
            ),
        };
        format!(
            "WhatsApp logged this device out ({reason}); {moved}; the restart shows a new QR code"
        )
    }

    fn skip(&mut self, why: Malformed) {
        tracing::warn!(reason = %why, "skipping a line from the WhatsApp bridge");
        self.stats.malformed += 1;
        self.stats.last_malformed = Some(why.0);
    }

    async fn exited(&mut self, status: std::process::ExitStatus) -> String {
        if let Some(process) = self.process.as_mut() {
            // For its last stderr lines, where the reason usually is.
            process.exited_within(Duration::from_millis(500)).await;
        }
        format!(
            "the WhatsApp bridge exited ({status}); last stderr: {}",
            self.stderr_tail()
        )
    }

    fn stderr_tail(&self) -> String {
        match self.process.as_ref().map(BridgeProcess::stderr_tail) {
            Some(tail) if !tail.is_empty() => tail,
            _ => "(none)".into(),
        }
    }

    /// Tells the link this bridge is gone and why.
    fn detach(&mut self, why: &str) {
        if let Some(incarnation) = self.attached.take() {
            self.link
                .update_status(|s| s.last_error = Some(why.to_owned()));
            self.link.detach(incarnation, why);
        } else {
            self.link.update_status(|s| {
                s.phase = Phase::Stopped;
                s.last_error = Some(why.to_owned());
            });
        }
    }
}

impl Drop for BridgeState {
    /// The last net: an actor that panicked skips both `handle`'s error path and `post_stop`.
    fn drop(&mut self) {
        if self.attached.is_some() {
            self.detach("the bridge actor stopped");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
