#!/bin/sh
# A stand-in for the `claude` binary, for testing ClaudeRunner's process handling without the
# real CLI. Committed rather than written by the tests: executing a file that this
# multi-threaded test process has just written can fail with ETXTBSY.
#
# It always records its arguments, its stdin and its pid (= its process group) in the working
# directory, then behaves as FAKE_MODE says:
#   replay    print the file FAKE_FIXTURE, write FAKE_STDERR on stderr, exit FAKE_EXIT (0)
#   env       like replay, after writing its environment to env.txt
#   idle      start a sleep in its group and one in a new session, print a line, go silent
#   chatty    print a line every 0.1 s, forever
#   retrying  print FAKE_RETRIES api_retry lines FAKE_PAUSE s apart, then replay
printf '%s\n' "$@" > args.txt
cat > prompt.txt
echo $$ > pid.txt
init='{"type":"system","subtype":"init","session_id":"fake-session","cwd":"'"$PWD"'"}'
case "$FAKE_MODE" in
  env)
    env > env.txt ;;
  idle)
    sleep 300 &
    echo "$!" > child.txt
    # Like Claude Code's Bash tool: a process in a session (and group) of its own.
    setsid sleep 300 &
    echo "$!" > escaped.txt
    echo "$init"
    exec sleep 300 ;;
  chatty)
    echo "$init"
    while :; do echo '{"type":"keep_alive"}'; sleep 0.1; done ;;
  retrying)
    echo "$init"
    i=1
    while [ "$i" -le "${FAKE_RETRIES:-3}" ]; do
      echo '{"type":"system","subtype":"api_retry","attempt":'"$i"',"error_status":529,"error":"overloaded"}'
      sleep "${FAKE_PAUSE:-0.5}"
      i=$((i + 1))
    done ;;
esac
[ -n "$FAKE_STDERR" ] && echo "$FAKE_STDERR" >&2
[ -n "$FAKE_FIXTURE" ] && cat "$FAKE_FIXTURE"
exit "${FAKE_EXIT:-0}"
