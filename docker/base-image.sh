#!/usr/bin/env bash
# A Debian bookworm base image built from Debian's mirror alone, for machines without a container registry:
# the same package sources as debian:bookworm-slim (main, updates, security), so the same pinned versions
# install on both. Usage: docker/base-image.sh ENGINE IMAGE (ENGINE: podman or docker).
set -euo pipefail
engine=$1 image=$2
if "$engine" image inspect "$image" >/dev/null 2>&1; then
    echo "$image is already there"
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "building $image needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
echo "building $image with mmdebstrap (minbase bookworm) ..."
mmdebstrap --variant=minbase --quiet bookworm - \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    | "$engine" import - "$image"
