#!/bin/sh
# Entrypoint of the agent image: runs its arguments, with the prompt on stdin when there is one.
#
# borg gives an agent its prompt as a file in the mounted home, named by BORG_PROMPT_FILE,
# rather than through an attached stdin: a file needs no half-closed hijacked connection to
# signal the end of the prompt, and a prompt of any size is fine. The file is opened as stdin
# and deleted at once, so it is gone before the agent runs; the open descriptor keeps the
# contents readable. Without BORG_PROMPT_FILE (test commands) stdin is left alone.
set -eu
if [ -n "${BORG_PROMPT_FILE:-}" ]; then
  exec 0<"$BORG_PROMPT_FILE"
  rm -f -- "$BORG_PROMPT_FILE"
  unset BORG_PROMPT_FILE
fi
exec "$@"
