#!/usr/bin/env bash
# Starts the engines the tests talk to when they are not running: the Docker engine and
# RabbitMQ. SecantusDB and the moto S3 server are started by the tests themselves.
#
# Every wait is bounded (about five minutes in all at worst): an engine that does not come up
# fails this script with the tail of its log, instead of holding a CI run until its limit.
set -euo pipefail
logs=${SPACEDOCK_SERVICE_LOGS:-/tmp/spacedock-services}
mkdir -p "$logs"

if ! timeout 20 docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $logs/dockerd.log)"
  nohup dockerd >"$logs/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do timeout 10 docker info >/dev/null 2>&1 && break; sleep 0.5; done
  timeout 10 docker info >/dev/null 2>&1 || { echo "dockerd did not start"; tail -20 "$logs/dockerd.log"; exit 1; }
fi

# RabbitMQ: a broker that answers is used as it is. Otherwise the tests get a broker of their
# own, started on an empty data directory: a node left behind by an earlier run (hundreds of
# test vhosts to recover, a store cut off mid-write) has been seen to hang in its boot for
# good, and a broker this script starts must not depend on what an earlier one left.
rabbit_state=${SPACEDOCK_RABBITMQ_STATE:-/var/lib/rabbitmq/spacedock-test-broker}
marker=.spacedock-tests  # written into the directory this script made: the only kind it empties
# The machine's broker, run by Debian's rabbitmq user (not a CLI command's own runtime, not a
# broker of another user's, such as one in a container).
node='beam.smp.* -s rabbit boot'

rabbit_ready() {  # $1: the seconds a node may take to say it has started
  timeout $(($1 + 10)) rabbitmqctl -q await_startup --timeout "$1" >/dev/null 2>&1
}

gone_within() {  # $1: seconds
  for _ in $(seq 1 $(($1 * 2))); do pgrep -u rabbitmq -f "$node" >/dev/null || return 0; sleep 0.5; done
  ! pgrep -u rabbitmq -f "$node" >/dev/null
}

if ! rabbit_ready 20; then
  case "$rabbit_state" in
    /*) ;;
    *) echo "SPACEDOCK_RABBITMQ_STATE must be an absolute path"; exit 1 ;;
  esac
  if [ -e "$rabbit_state" ] && [ ! -e "$rabbit_state/$marker" ]; then
    echo "$rabbit_state is not a directory this script made: it is left as it is"
    exit 1
  fi
  if pgrep -u rabbitmq -f "$node" >/dev/null; then
    echo "stopping a RabbitMQ node that does not answer"
    timeout 30 rabbitmqctl -q stop >/dev/null 2>&1 || true
    pkill -u rabbitmq -f "$node" || true
    gone_within 10 || { pkill -9 -u rabbitmq -f "$node" || true; }
    gone_within 10 || { echo "a RabbitMQ node that does not answer could not be stopped"; exit 1; }
  fi
  echo "starting rabbitmq-server on an empty data directory ($rabbit_state)"
  rm -rf "$rabbit_state"
  mkdir -p "$rabbit_state/mnesia" "$rabbit_state/log"
  touch "$rabbit_state/$marker"
  chown -R rabbitmq:rabbitmq "$rabbit_state"
  RABBITMQ_MNESIA_BASE="$rabbit_state/mnesia" RABBITMQ_LOG_BASE="$rabbit_state/log" \
    rabbitmq-server -detached </dev/null >/dev/null 2>&1 || true
  # await_startup fails at once until the node has registered with epmd: poll until it
  # answers, for three minutes at most from here.
  deadline=$((SECONDS + 180))
  until rabbit_ready 5; do
    if ((SECONDS >= deadline)); then
      echo "rabbitmq-server did not start within 3 minutes; the end of its log:"
      tail -n 30 "$rabbit_state"/log/*.log 2>/dev/null || true
      exit 1
    fi
    sleep 1
  done
fi
