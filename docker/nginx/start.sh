#!/bin/sh
# Render the shared nginx template for the containers (upstreams `predict` and `writer`, certificate from compose secrets)
# and run nginx in the foreground; the access log goes to stdout (access.log -> /dev/stdout).
set -eu
export RAKUTEN_UPSTREAM="${RAKUTEN_UPSTREAM:-predict:8000}" RAKUTEN_WRITER_UPSTREAM="${RAKUTEN_WRITER_UPSTREAM:-writer:8000}" \
       RAKUTEN_HTTP_PORT="${RAKUTEN_HTTP_PORT:-80}" RAKUTEN_HTTPS_PORT="${RAKUTEN_HTTPS_PORT:-443}" \
       RAKUTEN_TLS_CERT="${RAKUTEN_TLS_CERT:-/run/secrets/tls_cert}" RAKUTEN_TLS_KEY="${RAKUTEN_TLS_KEY:-/run/secrets/tls_key}"
prefix=/var/lib/rakuten-nginx
envsubst '${RAKUTEN_UPSTREAM} ${RAKUTEN_WRITER_UPSTREAM} ${RAKUTEN_HTTP_PORT} ${RAKUTEN_HTTPS_PORT} ${RAKUTEN_TLS_CERT} ${RAKUTEN_TLS_KEY}' \
    < /etc/rakuten/nginx.conf.template > "$prefix/nginx.conf"
exec nginx -p "$prefix" -c nginx.conf -e stderr -g 'daemon off; user www-data;'
