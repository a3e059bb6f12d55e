#!/usr/bin/env bash
# Build frontdesk's three images from images/Dockerfile (`make images`):
#
#   ${IMAGE_REGISTRY}/frontdesk-controller:${IMAGE_TAG}   controller + frontdesk-certs
#   ${IMAGE_REGISTRY}/frontdesk-proxy:${IMAGE_TAG}
#   ${IMAGE_REGISTRY}/frontdesk-demo:${IMAGE_TAG}
#
#   IMAGE_REGISTRY     default ghcr.io/frontdesk-dev; set and empty: no prefix (frontdesk-proxy:TAG)
#   IMAGE_TAG          default: the workspace version ([workspace.package] version in Cargo.toml),
#                      which is also the chart's appVersion, the chart's default tag
#   DOCKER_BUILD_ARGS  extra flags for every `docker build`, e.g. "--progress=plain"
#
# Needs a running Docker engine with BuildKit (Docker 23+ has it by default). The three builds
# share the builder stage, so the workspace is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."

# `-` rather than `:-`: an empty IMAGE_REGISTRY is a choice (no prefix), not a missing value.
registry="${IMAGE_REGISTRY-ghcr.io/frontdesk-dev}"
registry="${registry%/}"

workspace_version() {
  awk '
    /^\[/ { in_section = ($0 == "[workspace.package]") }
    in_section && /^version[[:space:]]*=/ {
      sub(/^version[[:space:]]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
    }
  ' Cargo.toml
}

tag="${IMAGE_TAG:-$(workspace_version)}"
if [[ -z "$tag" ]]; then
  echo "build-images: no IMAGE_TAG and no [workspace.package] version in Cargo.toml" >&2
  exit 1
fi

if ! command -v docker >/dev/null 2>&1; then
  echo "build-images: docker is not installed (https://docs.docker.com/engine/install/)" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "build-images: docker cannot reach a Docker engine (\`docker info\` failed)." >&2
  echo "  Start the engine (e.g. \`sudo systemctl start docker\`), or point DOCKER_HOST at one." >&2
  exit 1
fi

revision="$(git rev-parse --verify -q HEAD 2>/dev/null)" || revision=unknown
extra=()
if [[ -n "${DOCKER_BUILD_ARGS:-}" ]]; then
  read -r -a extra <<<"$DOCKER_BUILD_ARGS"
fi

image_name() { # component -> full image reference
  echo "${registry:+$registry/}frontdesk-$1:$tag"
}

export DOCKER_BUILDKIT=1
built=()
for target in controller proxy demo; do
  image="$(image_name "$target")"
  echo "build-images: building $image (target $target)"
  docker build \
    --target "$target" \
    --file images/Dockerfile \
    --tag "$image" \
    --build-arg "VERSION=$tag" \
    --build-arg "REVISION=$revision" \
    "${extra[@]}" \
    .
  built+=("$image")
done

echo "build-images: built"
printf '  %s\n' "${built[@]}"
