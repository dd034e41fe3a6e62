#!/bin/sh
# As `rakuten`: on first start make the project volume a git + DVC workspace and get data and a model
# the way `make run` does; then serve. Later starts find the volume as the last run left it.
set -eu
project=${RAKUTEN_PROJECT_DIR:?}
cd "$project"
if [ "${RAKUTEN_ROLE:-all}" = predict ]; then
    # A predict replica reads the project the writer prepared (read-only) and writes only its state folder.
    # Following a registry stage needs a clone whose tags it can fetch: its own, in that folder.
    set -- --host 0.0.0.0 --port 8000 --workers "${RAKUTEN_WORKERS:-1}" --role predict
    if [ -n "${RAKUTEN_MODEL_REF:-}" ]; then
        clone="${RAKUTEN_STATE_DIR:?}/registry-clone"
        [ -d "$clone/.git" ] || git clone -q "${RAKUTEN_GIT_REMOTE:-$project}" "$clone"
        if [ -n "${DAGSHUB_TOKEN:-}" ]; then
            export AWS_ACCESS_KEY_ID="$DAGSHUB_TOKEN" AWS_SECRET_ACCESS_KEY="$DAGSHUB_TOKEN"
        fi
        export RAKUTEN_PROJECT_DIR="$clone"
        set -- "$@" --model "$RAKUTEN_MODEL_REF" --follow "${RAKUTEN_FOLLOW_SECONDS:-30}"
    fi
    # Podman 4.3's compose starts replicas without waiting for the writer to be healthy: on a first start,
    # wait for the model its `dvc repro` writes (later models arrive through the writer's marker).
    waited=0
    while [ -z "${RAKUTEN_MODEL_REF:-}" ] && [ ! -f "$project/models/model.joblib" ]; do
        [ "$waited" -lt "${RAKUTEN_WRITER_WAIT:-1200}" ] || { echo "error: no model from the writer" >&2; exit 1; }
        [ "$waited" -gt 0 ] || echo "waiting for the writer's first model in $project/models/model.joblib"
        sleep 2; waited=$((waited + 2))
    done
    exec rakuten serve "$@"
fi
if [ ! -f dvc.yaml ]; then
    echo "first start: copying the project into $project"
    cp -a /opt/rakuten/project/. .
    git init -q -b main
    git config user.name rakuten-api
    git config user.email rakuten-api@localhost
    git add -A
    git commit -q -m "Project as shipped in the image"
fi
if [ -n "${RAKUTEN_GIT_REMOTE:-}" ]; then
    # The registry's tags (RAKUTEN_MODEL_REF) are read from the team's repository.
    git remote remove origin 2>/dev/null || true
    git remote add origin "$RAKUTEN_GIT_REMOTE"
fi
if [ -n "${DAGSHUB_TOKEN:-}" ]; then
    # DagsHub's S3 storage takes the token as both keys; read from the environment, never written to disk.
    export AWS_ACCESS_KEY_ID="$DAGSHUB_TOKEN" AWS_SECRET_ACCESS_KEY="$DAGSHUB_TOKEN"
fi
rakuten ensure-raw-data
set -- --host 0.0.0.0 --port 8000 --workers "${RAKUTEN_WORKERS:-1}" --role "${RAKUTEN_ROLE:-all}"
if [ "${RAKUTEN_ROLE:-all}" = all ] && [ -n "${RAKUTEN_MODEL_REF:-}" ]; then
    if ! rakuten serve --help | grep -q -- '--model'; then
        echo "error: RAKUTEN_MODEL_REF=$RAKUTEN_MODEL_REF is set, but this image's \`rakuten serve\` has no --model" \
             "option to serve a registered model; unset it to serve the project's own model" >&2
        exit 2
    fi
    set -- "$@" --model "$RAKUTEN_MODEL_REF"  # a registered model (name#stage) instead of the local one
elif [ ! -f models/model.joblib ]; then
    dvc repro  # after a successful `dvc pull` this only checks out what the remote had
fi
exec rakuten serve "$@"
