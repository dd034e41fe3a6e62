#!/usr/bin/env bash
# A Debian bookworm base image built from Debian's mirror alone, for machines without a container registry:
# the same package sources as debian:bookworm-slim (docker/debian.sources.list: main, updates, security), so
# the same package versions install on both. Usage: docker/base-image.sh ENGINE IMAGE (ENGINE: podman or docker);
# an existing IMAGE is kept unless REBUILD=1 (then the new one takes its tag, with today's Debian packages).
set -euo pipefail
engine=$1 image=$2
if [ -z "${REBUILD:-}" ] && "$engine" image inspect "$image" >/dev/null 2>&1; then
    echo "$image is already there (REBUILD=1 builds it again from today's mirror)"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "building $image needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
echo "building $image with mmdebstrap (minbase bookworm) ..."
mapfile -t sources < <(grep '^deb ' "$(dirname "$0")/debian.sources.list")
mmdebstrap --variant=minbase --quiet bookworm - "${sources[@]}" | "$engine" import - "$image"
