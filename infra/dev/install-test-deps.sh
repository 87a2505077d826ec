#!/usr/bin/env bash
# Installs the system packages the tests and the bench need, when they are missing:
# Docker engine and CLI, RabbitMQ, skopeo, podman, buildah, containerd's ctr (containerd runs
# inside dockerd; the e2e tests use its socket), CNCF Distribution, a static busybox (base images
# are made locally: there is no registry on the internet to pull from), wrk, and docker-compose
# (v1, packaged by Debian) to validate docker-compose.yml, and Chromium for the UI's browser tests.
set -euo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
command -v buildah >/dev/null || need+=(buildah)
command -v ctr >/dev/null || need+=(containerd)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v wrk >/dev/null || need+=(wrk)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v curl >/dev/null || need+=(curl)  # the bench's client
command -v chromium >/dev/null || need+=(chromium)  # the UI's browser tests (Playwright drives it)
command -v file >/dev/null || need+=(file)  # tells a static busybox from a dynamic one
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need+=(busybox-static)

if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
