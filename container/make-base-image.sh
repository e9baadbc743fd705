#!/bin/sh
# Makes the base image of container/Dockerfile, `debian:bookworm-slim`, from Debian's package
# archive when the engine does not have it yet. No image registry is reachable on the build
# machines, but Debian's archive is: mmdebstrap builds a minimal root filesystem (~20 s) and
# `docker import` turns it into the image. Concurrent callers (parallel test binaries) are
# serialized with flock, and whoever comes second finds the image present and does nothing.
#
# Usage: container/make-base-image.sh [IMAGE]   (default debian:bookworm-slim)
# Needs: docker (a reachable engine), mmdebstrap, flock; root or the mmdebstrap unshare mode.
set -eu
image="${1:-debian:bookworm-slim}"
suite=bookworm
lock="${BORG_BASE_IMAGE_LOCK:-/tmp/borg-base-image.lock}"

# Read-only is enough for flock, and all another user may have of the lock file.
exec 9>>"$lock" 2>/dev/null || exec 9<"$lock"
flock 9

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
for tool in docker mmdebstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "make-base-image: $tool is not installed (apt-get install docker.io mmdebstrap)" >&2
    exit 1
  fi
done
echo "make-base-image: building $image with mmdebstrap --variant=minbase $suite" >&2
# The tarball goes straight from mmdebstrap into the engine: nothing is left on disk.
mmdebstrap --quiet --variant=minbase "$suite" - \
  | docker import \
      --change 'CMD ["bash"]' \
      --change 'ENV LANG=C.UTF-8' \
      --message "borg: mmdebstrap --variant=minbase $suite" \
      - "$image" >/dev/null
echo "make-base-image: $image is ready" >&2
