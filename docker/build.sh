#!/usr/bin/env bash
# Build an image of this repository without BuildKit and on the host network:
#   docker/build.sh trainer|airflow TAG [BASE]
# BASE: the FROM image (default: the Dockerfile's own, an official image); the tests pass the image made by
# base-image.sh. The build context is assembled in a temporary folder: the package, dags/, plugins/,
# great_expectations/, the host's CA bundle (docker/certs/host-ca.crt) and local wheels ($PIP_FIND_LINKS, docker/wheels).
set -euo pipefail
kind=${1:?usage: build.sh trainer|airflow TAG [BASE]}
tag=${2:?usage: build.sh trainer|airflow TAG [BASE]}
base=${3:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "$repo"/pyproject.toml "$repo"/constraints.txt "$repo"/README.md "$repo"/mlops_ops "$repo"/dags "$repo"/plugins \
  "$repo"/great_expectations "$repo"/docker "$ctx"/
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$ctx"/docker/helm
bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$bundle" ] && cp "$bundle" "$ctx/docker/certs/host-ca.crt"
links=${PIP_FIND_LINKS:-/opt/wheels}
[ -d "$links" ] && find "$links" -maxdepth 1 -name '*.whl' -exec cp {} "$ctx/docker/wheels/" \;
args=(--network host -f "$ctx/docker/$kind.Dockerfile" -t "$tag")
[ -n "$base" ] && args+=(--build-arg "BASE=$base")
[ -n "${TORCH_INDEX+x}" ] && args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")
DOCKER_BUILDKIT=0 docker build -q "${args[@]}" "$ctx"
