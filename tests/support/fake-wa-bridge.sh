#!/usr/bin/env bash
# A fake WhatsApp bridge for tests/whatsapp.rs: speaks borg's bridge protocol
# (src/whatsapp/protocol.rs) on stdin/stdout without Node, Baileys or WhatsApp.
#
# Usage: fake-wa-bridge.sh MODE LOG --auth-dir DIR   (borg appends `--auth-dir DIR`)
#
# Every run appends to LOG: `pid <pid>`, `child <pid>` (a grandchild left running, to prove
# the whole process group dies), `auth <dir>`, each command line received as `got <line>`,
# and `bye` when asked to shut down. Runs are counted in LOG.runs.
#
# MODE:
#   normal      hello, ready, one group message mentioning the bot; acks sends and edits
#               (a text containing "please fail" gets a chat_unavailable error)
#   pair        hello and a QR code, never ready
#   mute        hello and ready, but never answers a send
#   garbage     hello, ready, lines that are not protocol events, then a good message
#   crash-once  the first run delivers a message and exits 3; later runs deliver another
#   logged-out  hello, ready, then `closed` with logged_out
#   old         hello with protocol version 99
#   silent      never says hello

mode=$1
log=$2
shift 2
auth=
while [ $# -gt 0 ]; do
  case $1 in
    --auth-dir) auth=$2; shift 2 ;;
    *) shift ;;
  esac
done

runs=$(( $(cat "$log.runs" 2>/dev/null || echo 0) + 1 ))
echo "$runs" > "$log.runs"

sleep 600 </dev/null >/dev/null 2>&1 &
{
  echo "pid $$"
  echo "child $!"
  echo "auth $auth"
} >> "$log"

ME='15550001111:4@s.whatsapp.net'
hello() { echo '{"type":"hello","version":1}'; }
ready() { echo "{\"type\":\"ready\",\"me\":\"$ME\",\"name\":\"Fake\"}"; }
# message ID TEXT [MENTION]
message() {
  local mentions='[]'
  [ -n "$3" ] && mentions="[\"$3\"]"
  echo "{\"type\":\"message\",\"chat\":\"120363000000000001@g.us\",\"id\":\"$1\",\"sender\":\"4915111111111:2@s.whatsapp.net\",\"sender_name\":\"Ada\",\"text\":\"$2\",\"mentions\":$mentions,\"reply_to_me\":false,\"is_group\":true,\"ts\":1700000000000,\"chat_name\":\"Fake group\"}"
}

# Answers commands until stdin closes or borg says shutdown. $1: "ack" or "mute".
serve() {
  local line req
  while IFS= read -r line; do
    echo "got $line" >> "$log"
    req=
    [[ $line =~ \"req\":([0-9]+) ]] && req=${BASH_REMATCH[1]}
    case $line in
      *'"type":"shutdown"'*) echo bye >> "$log"; exit 0 ;;
      *'please fail'*) echo "{\"type\":\"error\",\"req\":$req,\"message\":\"forbidden\",\"class\":\"chat_unavailable\"}" ;;
      *'"type":"send"'* | *'"type":"edit"'*)
        [ "$1" = ack ] && echo "{\"type\":\"sent\",\"req\":$req,\"id\":\"FAKE-$req\"}" ;;
    esac
  done
}

case $mode in
  normal)
    hello; ready; message M1 '@15550001111 hello bot' '15550001111@s.whatsapp.net'
    serve ack ;;
  pair)
    hello; echo '{"type":"qr","code":"2@FAKE-PAIRING-CODE,xyz"}'
    serve ack ;;
  mute)
    hello; ready
    serve mute ;;
  garbage)
    hello; ready
    echo 'this is not json'
    echo '[1,2,3]'
    echo '{"type":"bogus","x":1}'
    echo '{"type":"message","chat":"120363000000000001@g.us"}'
    printf '%*s\n' 1100000 '' | tr ' ' x
    echo
    message M2 'the good one'
    serve ack ;;
  crash-once)
    hello; ready
    if [ "$runs" = 1 ]; then
      message C1 'before the crash'
      echo 'fake bridge: crashing on purpose' >&2
      exit 3
    fi
    message C2 'after the restart'
    serve ack ;;
  logged-out)
    hello; ready
    echo '{"type":"closed","reason":"Connection Failure (code 401)","logged_out":true}'
    exit 0 ;;
  old)
    echo '{"type":"hello","version":99}'
    serve ack ;;
  silent)
    serve ack ;;
  *)
    echo "fake bridge: unknown mode $mode" >&2
    exit 64 ;;
esac
