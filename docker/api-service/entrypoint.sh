#!/bin/sh
# Root part of the start: give the project volume (the writer's; predict replicas mount it read-only)
# and a private copy of the users file (a compose secret, bind-mounted with the host's owner and mode) to
# the `rakuten` user, then run start.sh as it.
set -eu
project=${RAKUTEN_PROJECT_DIR:?}
if [ "${RAKUTEN_ROLE:-all}" != predict ]; then
    chown rakuten:rakuten "$project"
fi
if [ -n "${RAKUTEN_STATE_DIR:-}" ]; then
    install -d -o rakuten -g rakuten -m 700 "$RAKUTEN_STATE_DIR"
fi
# The prediction log's volume, shared by the replicas (writing) and the monitor (reading).
if [ -n "${RAKUTEN_PREDICTION_LOG_DIR:-}" ]; then
    install -d -o rakuten -g rakuten -m 750 "$RAKUTEN_PREDICTION_LOG_DIR"
    chown rakuten:rakuten "$RAKUTEN_PREDICTION_LOG_DIR"
fi
if [ -f /run/secrets/users ]; then
    install -d -o rakuten -g rakuten -m 700 "$(dirname "$RAKUTEN_USERS_FILE")"
    install -o rakuten -g rakuten -m 600 /run/secrets/users "$RAKUTEN_USERS_FILE"
fi
exec setpriv --reuid=rakuten --regid=rakuten --init-groups --inh-caps=-all env HOME=/home/rakuten \
    /usr/local/bin/start.sh "$@"
