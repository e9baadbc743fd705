// The stand-in for WhatsApp that `bridge.mjs --self-test` runs: a socket with the parts of
// Baileys' socket the bridge uses, and a script of Baileys-shaped events played through the
// bridge's real handlers. borg writes this file next to bridge.mjs; only the self-test loads it.
//
// What the script expects back (borg's contract test in tests/whatsapp.rs checks it): a QR
// code, `ready`, then messages SAMPLE1 (a mention of the account's lid), SAMPLE2 (private,
// wrapped in an ephemeral message, a Long timestamp) and SAMPLE5 (a caption replying to the
// account); the history copy, the reaction and the status update are not delivered.

import { EventEmitter } from 'node:events';

export function stubSocket(note) {
  let next = 0;
  return {
    ev: new EventEmitter(),
    user: undefined,
    async sendMessage(jid, content, options) {
      note(`self-test send ${JSON.stringify({ jid, content, quoted: options?.quoted?.key?.id })}`);
      if (content.text?.includes('please fail')) {
        throw Object.assign(new Error('forbidden'), { output: { statusCode: 403 } });
      }
      next += 1;
      const id = content.edit ? `SELFTEST-EDIT${next}` : `SELFTEST${next}`;
      return { key: { remoteJid: jid, id, fromMe: true }, message: { conversation: content.text } };
    },
    async sendPresenceUpdate(type, jid) {
      note(`self-test presence ${type} ${jid}`);
    },
    async groupMetadata(jid) {
      return { id: jid, subject: 'Self-test group' };
    },
    end() {},
  };
}

const GROUP = '120363000000000001@g.us';
const SAMPLES = [
  {
    key: { remoteJid: GROUP, id: 'SAMPLE1', participant: '4915111111111:3@s.whatsapp.net' },
    pushName: 'Ada',
    messageTimestamp: 1700000000,
    message: {
      extendedTextMessage: {
        text: '@99887766 please look',
        contextInfo: { mentionedJid: ['99887766@lid'] },
      },
    },
  },
  {
    key: { remoteJid: '4915222222222@s.whatsapp.net', id: 'SAMPLE2' },
    pushName: 'Grace',
    messageTimestamp: { toNumber: () => 1700000001 },
    message: { ephemeralMessage: { message: { conversation: 'hello in private' } } },
  },
  {
    key: { remoteJid: GROUP, id: 'SAMPLE3', participant: '4915111111111@s.whatsapp.net' },
    message: { reactionMessage: { text: '👍', key: { id: 'SAMPLE1' } } },
  },
  {
    key: { remoteJid: 'status@broadcast', id: 'SAMPLE4', participant: '4915111111111@s.whatsapp.net' },
    message: { conversation: 'my status' },
  },
  {
    key: { remoteJid: GROUP, id: 'SAMPLE5', participant: '4915333333333@s.whatsapp.net' },
    pushName: 'Linus',
    messageTimestamp: 1700000002,
    message: {
      imageMessage: {
        caption: 'what about this?',
        contextInfo: { stanzaId: 'EARLIER', participant: '15550001111@s.whatsapp.net' },
      },
    },
  },
];

// Pairing, logging in, then a history batch (ignored) and a batch of news.
export function play(sock) {
  sock.ev.emit('connection.update', { qr: 'SELFTEST-QR' });
  sock.user = { id: '15550001111:7@s.whatsapp.net', lid: '99887766:7@lid', name: 'borg' };
  sock.ev.emit('connection.update', { connection: 'open' });
  sock.ev.emit('messages.upsert', { type: 'append', messages: [SAMPLES[0]] });
  sock.ev.emit('messages.upsert', { type: 'notify', messages: SAMPLES });
}
