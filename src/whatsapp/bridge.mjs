// borg's WhatsApp bridge: Baileys behind borg's line protocol.
//
// borg compiles this file in (src/whatsapp/bridge.mjs), writes it out at every start next to
// its pinned package.json, and runs it as `node bridge.mjs --auth-dir <dir>`. Commands come
// on stdin and events go to stdout, one JSON object per line; the protocol is defined by the
// Rust types in src/whatsapp/protocol.rs. Only protocol lines go to stdout: whatever else
// gets printed (Baileys' and libsignal's logging) is sent to stderr, which borg logs.
//
// `--self-test` swaps WhatsApp for the scripted stand-in socket in selftest.mjs, which drives
// the same handlers with Baileys-shaped events; borg's contract test runs it, and it needs no
// packages.

import { createInterface } from 'node:readline';

const PROTOCOL_VERSION = 1;
// Messages kept for quoting, for recognising our own, and for WhatsApp's resend requests.
const REMEMBER = 500;
// Baileys' DisconnectReason codes this bridge acts on.
const LOGGED_OUT = 401;
const RESTART_REQUIRED = 515;

// stdout belongs to the protocol.
const protocolWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, encoding, callback) =>
  process.stderr.write(chunk, encoding, callback);
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

function emit(event) {
  protocolWrite(JSON.stringify(event) + '\n');
}

function note(message) {
  process.stderr.write(`bridge: ${message}\n`);
}

const args = process.argv.slice(2);
const selfTest = args.includes('--self-test');
const authDir = args.includes('--auth-dir') ? args[args.indexOf('--auth-dir') + 1] : undefined;

// Baileys logs through this; warnings and errors reach borg's log, the rest is dropped.
const logger = {
  level: 'warn',
  child() {
    return logger;
  },
  trace() {},
  debug() {},
  info() {},
  warn(obj, msg) {
    process.stderr.write(`baileys warn: ${describe(obj, msg)}\n`);
  },
  error(obj, msg) {
    process.stderr.write(`baileys error: ${describe(obj, msg)}\n`);
  },
};

function describe(obj, msg) {
  if (typeof obj === 'string') return obj;
  const err = obj instanceof Error ? obj : (obj?.err ?? obj?.error);
  let detail = err?.message;
  if (!detail) {
    try {
      detail = JSON.stringify(obj)?.slice(0, 300);
    } catch {
      detail = String(obj);
    }
  }
  return msg ? `${msg} ${detail}` : detail;
}

// ── Jids and message content (protocol.rs and convert.rs hold the Rust side) ──

function jidUser(jid) {
  if (typeof jid !== 'string') return ['', ''];
  const at = jid.indexOf('@');
  let user = at >= 0 ? jid.slice(0, at) : jid;
  let server = at >= 0 ? jid.slice(at + 1) : '';
  const colon = user.indexOf(':');
  if (colon >= 0) user = user.slice(0, colon);
  if (server === 'c.us') server = 's.whatsapp.net';
  return [user, server];
}

function sameUser(a, b) {
  const [userA, serverA] = jidUser(a);
  const [userB, serverB] = jidUser(b);
  return userA !== '' && userA === userB && serverA === serverB;
}

function normalized(jid) {
  const [user, server] = jidUser(jid);
  return server ? `${user}@${server}` : user;
}

const WRAPPERS = [
  'ephemeralMessage',
  'viewOnceMessage',
  'viewOnceMessageV2',
  'viewOnceMessageV2Extension',
  'documentWithCaptionMessage',
];
const WITH_CONTEXT = ['extendedTextMessage', 'imageMessage', 'videoMessage', 'documentMessage'];

function unwrap(content) {
  for (let depth = 0; depth < 5 && content; depth++) {
    const wrapper = WRAPPERS.find((name) => content[name]?.message);
    if (!wrapper) break;
    content = content[wrapper].message;
  }
  return content;
}

function textOf(content) {
  return (
    content?.conversation ||
    content?.extendedTextMessage?.text ||
    content?.imageMessage?.caption ||
    content?.videoMessage?.caption ||
    content?.documentMessage?.caption ||
    ''
  );
}

function contextOf(content) {
  const kind = WITH_CONTEXT.find((name) => content?.[name]?.contextInfo);
  return kind ? content[kind].contextInfo : undefined;
}

// WhatsApp's timestamps are seconds, sometimes as a protobuf Long.
function millis(ts) {
  const seconds = typeof ts?.toNumber === 'function' ? ts.toNumber() : Number(ts);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : Date.now();
}

class Recent {
  constructor(max) {
    this.max = max;
    this.map = new Map();
  }
  set(key, value) {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value);
  }
  get(key) {
    return this.map.get(key);
  }
  has(key) {
    return this.map.has(key);
  }
}

// ── The socket's events ──

const received = new Recent(REMEMBER); // id → WAMessage, to quote
const sent = new Recent(REMEMBER); // id → message content, ours
const groups = new Map(); // jid → group metadata
let sock;
let me = {};
let connected = false;
let stopping = false;
let saving = Promise.resolve();
// Socket events are handled one after the other, in the order they came.
let events = Promise.resolve();

function serially(handler) {
  return (value) => {
    events = events.then(() => handler(value)).catch((e) => note(`an event failed: ${e?.stack ?? e}`));
  };
}

function listen(socket, reconnect) {
  socket.ev.on('connection.update', serially((update) => onConnection(socket, update, reconnect)));
  socket.ev.on('messages.upsert', serially(onUpsert));
  socket.ev.on('groups.update', (updates) => {
    for (const update of updates ?? []) {
      const known = groups.get(update.id);
      if (known) groups.set(update.id, { ...known, ...update });
    }
  });
}

async function onConnection(socket, { connection, lastDisconnect, qr }, reconnect) {
  if (socket !== sock) return; // a socket already replaced
  if (qr) emit({ type: 'qr', code: qr, terminal: await drawQr(qr) });
  if (connection === 'open') {
    connected = true;
    const user = socket.user ?? {};
    me = { id: normalized(user.id), lid: user.lid ? normalized(user.lid) : undefined };
    emit({ type: 'ready', me: me.id, lid: me.lid, name: user.name });
  }
  if (connection === 'close') {
    connected = false;
    if (stopping) return;
    const code = lastDisconnect?.error?.output?.statusCode;
    if (code === RESTART_REQUIRED) {
      // Part of pairing: WhatsApp wants a fresh connection with the new credentials.
      note('WhatsApp asked for a new connection (normal after pairing); reconnecting');
      await reconnect();
      return;
    }
    const why = lastDisconnect?.error?.message ?? 'connection closed';
    emit({ type: 'closed', reason: `${why} (code ${code ?? 'none'})`, logged_out: code === LOGGED_OUT });
    await stop(0);
  }
}

async function onUpsert({ messages, type }) {
  // 'append' is history sync and our own sends; only 'notify' is news.
  if (type !== 'notify') return;
  for (const msg of messages ?? []) {
    const event = await toEvent(msg);
    if (event) emit(event);
  }
}

async function toEvent(msg) {
  const chat = msg?.key?.remoteJid;
  const id = msg?.key?.id;
  if (!chat || !id || chat.endsWith('@broadcast') || chat.endsWith('@newsletter')) return undefined;
  if (msg.key.fromMe && sent.has(id)) return undefined; // our own answer, echoed
  const content = unwrap(msg.message);
  const text = textOf(content);
  if (!text) return undefined;
  received.set(id, msg);
  const isGroup = chat.endsWith('@g.us');
  let sender = isGroup ? (msg.key.participantPn ?? msg.key.participant) : (msg.key.senderPn ?? chat);
  if (msg.key.fromMe) sender = me.id;
  const context = contextOf(content);
  const replyToMe = sent.has(context?.stanzaId) || isMe(context?.participant);
  return {
    type: 'message',
    chat,
    id,
    sender: normalized(sender || chat),
    sender_name: msg.pushName ?? '',
    text,
    mentions: context?.mentionedJid ?? [],
    reply_to_me: replyToMe,
    is_group: isGroup,
    ts: millis(msg.messageTimestamp),
    chat_name: isGroup ? await groupName(chat) : undefined,
  };
}

function isMe(jid) {
  return Boolean(jid) && (sameUser(jid, me.id) || sameUser(jid, me.lid));
}

async function groupName(jid) {
  if (!groups.has(jid)) {
    try {
      groups.set(jid, await within(sock.groupMetadata(jid), 5000, 'group metadata'));
    } catch (e) {
      note(`no name for group ${jid}: ${e.message}`);
      return undefined;
    }
  }
  return groups.get(jid)?.subject;
}

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function drawQr(code) {
  try {
    const { default: qrcode } = await import('qrcode-terminal');
    return await new Promise((resolve) => qrcode.generate(code, { small: true }, resolve));
  } catch {
    return undefined;
  }
}

// ── borg's commands ──

function listenToBorg() {
  let queue = Promise.resolve();
  const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
  input.on('line', (line) => {
    let command;
    try {
      command = JSON.parse(line);
    } catch (e) {
      emit({ type: 'error', message: `a command that is not JSON (${e.message})` });
      return;
    }
    // In order: the parts of a long answer must arrive in the order borg sent them.
    queue = queue.then(() => run(command)).catch((e) => note(`a command failed: ${e?.stack ?? e}`));
  });
  // borg is gone (or closed our stdin): finish what it asked for, then go.
  input.on('close', () => {
    queue = queue.then(() => stop(0));
  });
}

async function run(command) {
  switch (command?.type) {
    case 'send':
      return answer(command.req, () => send(command));
    case 'edit':
      return answer(command.req, () => edit(command));
    case 'typing':
      if (!connected) return undefined;
      return sock.sendPresenceUpdate('composing', command.chat).catch((e) => {
        emit({ type: 'error', message: `typing in ${command.chat}: ${e.message}` });
      });
    case 'shutdown':
      return stop(0);
    default:
      return emit({
        type: 'error',
        req: Number.isInteger(command?.req) ? command.req : undefined,
        message: `unknown command ${JSON.stringify(command?.type)}`,
      });
  }
}

async function answer(req, action) {
  try {
    emit({ type: 'sent', req, id: await action() });
  } catch (e) {
    emit({ type: 'error', req, message: e?.message ?? String(e), class: classify(e) });
  }
}

// Baileys fails with Boom errors that carry an HTTP-like status.
function classify(error) {
  const status = error?.output?.statusCode;
  if (status === 403 || status === 404) return 'chat_unavailable';
  if (status === 429) return 'rate_limited';
  return 'unavailable';
}

async function send({ chat, text, reply_to: replyTo }) {
  if (!connected) throw new Error('WhatsApp is not connected');
  // Quoting needs the whole message; one from before a restart goes out unquoted.
  const quoted = replyTo ? received.get(replyTo) : undefined;
  const message = await sock.sendMessage(chat, { text }, quoted ? { quoted } : {});
  const id = message?.key?.id;
  if (!id) throw new Error('WhatsApp returned no message id');
  sent.set(id, message.message);
  return id;
}

async function edit({ chat, id, text }) {
  if (!connected) throw new Error('WhatsApp is not connected');
  const message = await sock.sendMessage(chat, { text, edit: { remoteJid: chat, id, fromMe: true } });
  if (message?.key?.id) sent.set(message.key.id, message.message);
  return id;
}

async function stop(code) {
  if (stopping) return;
  stopping = true;
  connected = false;
  try {
    sock?.end(undefined);
  } catch {
    // Closing a socket that is closed already.
  }
  // The session must reach the disk, or the next start pairs again.
  await Promise.race([saving, new Promise((resolve) => setTimeout(resolve, 1500))]);
  process.exit(code);
}

// ── WhatsApp ──

async function connect(baileys) {
  const { state, saveCreds } = await baileys.useMultiFileAuthState(authDir);
  const config = {
    auth: { creds: state.creds, keys: baileys.makeCacheableSignalKeyStore(state.keys, logger) },
    logger,
    browser: baileys.Browsers.ubuntu('Chrome'),
    // Keeps the phone's notifications on: borg is not a person reading along.
    markOnlineOnConnect: false,
    syncFullHistory: false,
    getMessage: async (key) => sent.get(key.id),
    cachedGroupMetadata: async (jid) => groups.get(jid),
  };
  const version = await webVersion(baileys);
  if (version) config.version = version;
  sock = baileys.makeWASocket(config);
  sock.ev.on('creds.update', () => {
    saving = saving.then(saveCreds).catch((e) => note(`saving the session failed: ${e.message}`));
  });
  listen(sock, () => connect(baileys));
}

// WhatsApp refuses clients that are too old; ask it which web version is current.
async function webVersion(baileys) {
  try {
    const { version, isLatest } = await baileys.fetchLatestWaWebVersion({ timeout: 10000 });
    if (!isLatest) note("could not learn WhatsApp's current web version; using Baileys' own");
    return version;
  } catch {
    return undefined;
  }
}

// Baileys' default logger writes JSON to stdout from a few places that take no logger.
async function silenceDefaultLogger() {
  try {
    const { default: fallback } = await import('@whiskeysockets/baileys/lib/Utils/logger.js');
    fallback.level = 'silent';
  } catch {
    // Moved in another Baileys release: borg skips such lines as not-protocol anyway.
  }
}

// ── Self-test: the handlers above against the scripted socket of selftest.mjs ──

async function runSelfTest() {
  const { stubSocket, play } = await import('./selftest.mjs');
  sock = stubSocket(note);
  listen(sock, async () => {});
  play(sock);
}

// ── Start ──

async function main() {
  emit({ type: 'hello', version: PROTOCOL_VERSION });
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) {
    emit({
      type: 'closed',
      reason: `the bridge needs Node.js 20 or newer, this is ${process.versions.node}; set WHATSAPP_NODE`,
      logged_out: false,
    });
    process.exit(1);
  }
  listenToBorg();
  if (selfTest) return await runSelfTest();
  if (!authDir) {
    emit({ type: 'closed', reason: 'no --auth-dir given', logged_out: false });
    process.exit(2);
  }
  let baileys;
  try {
    baileys = await import('@whiskeysockets/baileys');
  } catch (e) {
    const reason = `cannot load Baileys (${e.message}); borg installs it with npm next to this script`;
    emit({ type: 'closed', reason, logged_out: false });
    process.exit(1);
  }
  await silenceDefaultLogger();
  await connect(baileys);
}

process.on('unhandledRejection', (e) => note(`unhandled rejection: ${e?.stack ?? e}`));
main().catch((e) => {
  emit({ type: 'closed', reason: `the bridge failed: ${e?.message ?? e}`, logged_out: false });
  process.exit(1);
});
