#!/usr/bin/env bash
# Stops the broker that scripts/kafka/start-broker.sh recorded in $KAFKA_STATE_DIR/broker.env
# (default .kafka/broker.env) and removes its temp data. Does nothing when none is recorded.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state_dir="${KAFKA_STATE_DIR:-$here/../../.kafka}"
env_file="$state_dir/broker.env"
say() { printf '[kafka] %s\n' "$*" >&2; }

if [ ! -f "$env_file" ]; then
  say "no broker recorded in $env_file"
  exit 0
fi
KAFKA_PID="" KAFKA_RUN_DIR=""
# shellcheck disable=SC1090
. "$env_file"

is_our_broker() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'kafka\.Kafka'; }

if [ -n "$KAFKA_PID" ] && is_our_broker "$KAFKA_PID"; then
  kill -TERM "$KAFKA_PID" 2>/dev/null || true
  # A controlled shutdown takes a few seconds; past 20 s the broker is killed.
  for _ in $(seq 1 100); do
    is_our_broker "$KAFKA_PID" || break
    sleep 0.2
  done
  if is_our_broker "$KAFKA_PID"; then
    say "broker pid $KAFKA_PID did not stop in 20 s; killing it"
    kill -KILL "$KAFKA_PID" 2>/dev/null || true
  fi
  say "stopped broker pid $KAFKA_PID"
else
  say "broker pid ${KAFKA_PID:-?} was not running"
fi
case "${KAFKA_RUN_DIR:-}" in
  */chunkrelay-kafka.*) rm -rf "$KAFKA_RUN_DIR" ;;
esac
rm -f "$env_file"
