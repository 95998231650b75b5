#!/bin/sh
# The chaos run's speech engine: an exec engine (docs/results.md) that keeps
# the engine's side of the history. Each call appends two lines to
# $CHAOS_HISTORY, one when it starts and one when it ends:
#
#   S <ms> <uid> <attempt> <worker> <chunk> <count> <pid> <name>
#   E <ms> <uid> <attempt> <worker> <chunk> <count> <pid> <outcome>
#
# outcome is ok, fail (exit 1, retryable), reject (exit 65, permanent) or
# term (stopped by SIGTERM: cancel, deadline, shutdown). A call killed with
# SIGKILL (with its worker) has no E line; the checker ends it at the kill.
#
# What it does follows the task's name, <prefix>-<flavour>:
#   flakyN   fails chunk 1 on attempts 1..N, then behaves
#   doomed   fails chunk 0 on every attempt
#   reject   exits 65 on chunk 0 (the input "can never work")
#   slow     takes CHAOS_SLOW_SECONDS per chunk (past the task's timeout)
#   cancel, delete   take CHAOS_LONG_SECONDS per chunk (time to be stopped)
#   anything else    takes CHAOS_CHUNK_SECONDS per chunk
# Written in sh, not Node: a run makes thousands of calls on two cores.
req=$(cat)
fields=$(printf '%s' "$req" | sed -n -e 'h' \
  -e 's/.*"task":{[^}]*"uid":"\([^"]*\)".*/\1/p' -e 'g' \
  -e 's/.*"task":{[^}]*"name":"\([^"]*\)".*/\1/p' -e 'g' \
  -e 's/.*"task":{[^}]*"attempt":\([0-9]*\).*/\1/p')
set -- $fields
uid=$1
name=$2
attempt=$3
chunk=${TQ_CHUNK_INDEX:-0}
count=${TQ_CHUNK_COUNT:-1}
worker=${CHAOS_WORKER:-unknown}
history=${CHAOS_HISTORY:-/dev/null}
now() { date +%s%3N; }

finish() {
  echo "E $(now) $uid $attempt $worker $chunk $count $$ $1" >>"$history"
}
trap 'finish term; exit 143' TERM INT

echo "S $(now) $uid $attempt $worker $chunk $count $$ $name" >>"$history"

flavour=${name##*-}
seconds=${CHAOS_CHUNK_SECONDS:-0.4}
code=0
case "$flavour" in
  flaky*)
    n=${flavour#flaky}
    if [ "$chunk" = 1 ] && [ "$attempt" -le "$n" ]; then code=1; fi ;;
  doomed) [ "$chunk" = 0 ] && code=1 ;;
  reject) [ "$chunk" = 0 ] && code=65 ;;
  slow) seconds=${CHAOS_SLOW_SECONDS:-3} ;;
  cancel|delete) seconds=${CHAOS_LONG_SECONDS:-1.5} ;;
esac

# In the background, so that SIGTERM runs the trap at once.
sleep "$seconds" &
wait $!

if [ "$code" = 1 ]; then
  echo "chaos engine: planned failure of $name attempt $attempt chunk $chunk" >&2
  finish fail
  exit 1
fi
if [ "$code" = 65 ]; then
  echo "chaos engine: $name can never work" >&2
  finish reject
  exit 65
fi

duration=${TQ_CHUNK_DURATION_SECONDS:-1}
if [ "$TQ_OPERATION" = diarize ]; then
  printf '{"segments":[{"start":0,"end":%s,"speaker":"V"}],"speakerEmbeddings":{"V":[1,0]}}' "$duration" >"$TQ_OUTPUT_FILE"
else
  printf '{"language":"en","segments":[{"start":0,"end":%s,"text":"uid=%s chunk=%s"}]}' "$duration" "$uid" "$chunk" >"$TQ_OUTPUT_FILE"
fi
finish ok
exit 0
