#!/usr/bin/env bash
# A Debian 12 base image made without a registry: debootstrap (minbase + python3, venv, CA certificates) from the
# Debian mirror apt already uses, then `docker import`. The tests build docker/*.Dockerfile FROM it (BASE=...).
#   docker/base-image.sh [NAME]     # default mlops-ops-base:bookworm; does nothing when the image exists
# Needs root (debootstrap) and a running engine (DOCKER_HOST, see engine.sh). About 45 s and 275 MB.
set -euo pipefail
name=${1:-mlops-ops-base:bookworm}
if docker image inspect "$name" >/dev/null 2>&1; then echo "$name"; exit 0; fi
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | head -1 | awk '{print $2}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
# the image's apt uses the same mirror (and the security suite) as the host
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" > "$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$name" >/dev/null
echo "$name"
