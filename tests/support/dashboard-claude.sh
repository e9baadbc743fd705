#!/bin/sh
# A stand-in for the `claude` binary for the dashboard's browser test: an agent that keeps
# working and talking, so its task stays in its phase with output to stream. It speaks just
# enough stream-json (an init, then one assistant text a second) and never finishes by itself;
# the daemon stops it. Committed rather than written by the test: executing a file that a
# multi-threaded test process has just written can fail with ETXTBSY.
cat > /dev/null
echo '{"type":"system","subtype":"init","session_id":"dashboard-session","cwd":"'"$PWD"'"}'
i=1
while [ "$i" -le 3600 ]; do
  echo '{"type":"assistant","message":{"content":[{"type":"text","text":"working on it, step '"$i"'"}]}}'
  i=$((i + 1))
  sleep 1
done
