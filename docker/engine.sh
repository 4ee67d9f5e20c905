#!/usr/bin/env bash
# A Docker engine for this project's tests and demo, with all its state under one folder:
#   docker/engine.sh start [STATE]   # installs docker.io from apt when missing (root), starts dockerd, waits
#   docker/engine.sh stop [STATE]    # stops it by its PID file
# STATE defaults to .mlops/docker. The engine gets no bridge and no iptables rules (containers use the host
# network or none) and listens only on the unix socket STATE/docker.sock: export DOCKER_HOST=unix://STATE/docker.sock.
set -euo pipefail
cmd=${1:?usage: engine.sh start|stop [STATE]}
state=$(realpath -m "${2:-.mlops/docker}")
pidfile=$state/docker.pid
sock=$state/docker.sock
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case $cmd in
start)
  if running; then echo "unix://$sock"; exit 0; fi
  if ! command -v dockerd >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "dockerd is missing and only root can install docker.io" >&2; exit 1; }
    apt-get install -y -q docker.io >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q docker.io >/dev/null; }
  fi
  [ "$(id -u)" = 0 ] || { echo "dockerd needs root here" >&2; exit 1; }
  mkdir -p "$state/data" "$state/exec"
  rm -f "$sock"
  setsid dockerd --iptables=false --ip6tables=false --bridge=none --data-root "$state/data" --exec-root "$state/exec" \
    -H "unix://$sock" -p "$pidfile" >"$state/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then echo "unix://$sock"; exit 0; fi
    sleep 0.5
  done
  echo "dockerd did not answer within 60 s; its log:" >&2; tail -20 "$state/dockerd.log" >&2; exit 1
  ;;
stop)
  running || exit 0
  pid=$(cat "$pidfile"); kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  ;;
*) echo "usage: engine.sh start|stop [STATE]" >&2; exit 2 ;;
esac
