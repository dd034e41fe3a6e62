#!/usr/bin/env bash
# Wait until every container of compose project STACK is healthy (podman-compose with podman < 4.6 cannot
# wait itself); on timeout or an unhealthy or exited container, print its last log lines and fail.
# Podman without systemd has no timer to run the healthchecks: this loop runs them.
# Usage: docker/wait-healthy.sh ENGINE STACK TIMEOUT_SECONDS
set -euo pipefail
engine=$1 stack=$2 timeout=$3
deadline=$((SECONDS + timeout))
while :; do
    states=$("$engine" ps -a --filter "label=com.docker.compose.project=$stack" --format '{{.Names}} {{.Status}}')
    if [ -z "$states" ]; then
        echo "no containers for compose project $stack" >&2
        exit 1
    fi
    if [ "$engine" = podman ]; then
        for name in $(grep -vE '\(healthy\)|Exited' <<<"$states" | cut -d' ' -f1); do
            podman healthcheck run "$name" >/dev/null 2>&1 || true
        done
        states=$(podman ps -a --filter "label=com.docker.compose.project=$stack" --format '{{.Names}} {{.Status}}')
    fi
    bad=$(grep -E 'unhealthy|Exited' <<<"$states" | cut -d' ' -f1 || true)
    if ! grep -qvE '\(healthy\)' <<<"$states"; then
        echo "$states"
        echo "all containers of $stack are healthy after ${SECONDS}s"
        exit 0
    fi
    if [ -n "$bad" ] || [ "$SECONDS" -ge "$deadline" ]; then
        echo "$states" >&2
        for name in ${bad:-$(grep -vE '\(healthy\)' <<<"$states" | cut -d' ' -f1)}; do
            echo "--- last log lines of $name:" >&2
            "$engine" logs --tail 40 "$name" >&2 || true
        done
        echo "containers of $stack not healthy (waited ${SECONDS}s)" >&2
        exit 1
    fi
    sleep 2
done
