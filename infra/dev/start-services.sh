#!/usr/bin/env bash
# Starts the engines the tests talk to when they are not running: the Docker engine and
# RabbitMQ. SecantusDB and the moto S3 server are started by the tests themselves.
set -euo pipefail
logs=${SPACEDOCK_SERVICE_LOGS:-/tmp/spacedock-services}
mkdir -p "$logs"

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $logs/dockerd.log)"
  nohup dockerd >"$logs/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start"; tail -20 "$logs/dockerd.log"; exit 1; }
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting rabbitmq-server"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  # await_startup fails at once until the node has registered with epmd: poll until it answers.
  for _ in $(seq 1 120); do
    rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    sleep 1
  done
  rabbitmqctl -q await_startup >/dev/null || { echo "rabbitmq-server did not start"; exit 1; }
fi
