#!/usr/bin/env bash
# Save an image built by ./build.sh for grand-challenge, and its weights as a model tarball.
#
#   ./export.sh [TAG]   (default trackrad-xmem) writes here:
#     <tag>_<YYYY-MM-DD>.tar.gz        the image (docker save | gzip): the algorithm image upload
#     <tag>_<YYYY-MM-DD>_model.tar.gz  the weights the image runs, alone at the tarball's root as
#                                      XMem.pth (official), trackrad-xmem.pth (project) or their
#                                      own name (user): the upload on the algorithm's Models page.
#                                      grand-challenge extracts it into /opt/ml/model/, which the
#                                      weight resolution reads before the image's resources/.
#                                      With them, pipeline.json, the settings file the image
#                                      holds (when ./build.sh found resources/pipeline.json).
#
# The weights are copied out of the image (the file its labels name) and checked against the
# sha256 in its labels. Both tarballs are written under temporary names first, so a failure never
# leaves a plausible one. Needs docker, tar, gzip and python3 (PYTHON=... picks another).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
APP_DIR=/opt/app  # the Dockerfile's WORKDIR, where build.sh's files sit in the image

case "${1:-}" in
    -h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
    -*) echo "usage: ./export.sh [TAG]" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: ./export.sh [TAG]" >&2; exit 2; }
TAG="${1:-trackrad-xmem}"
BASE="${TAG//[:\/]/_}_$(date +%Y-%m-%d)"
IMAGE_OUT="$BASE.tar.gz"
MODEL_OUT="${BASE}_model.tar.gz"

fail() {
    echo "export.sh: $*" >&2
    exit 1
}

# shellcheck source=tools/docker.sh
. tools/docker.sh  # the working directory is the repository root (above)
check_docker

work=$(mktemp -d)
container=""
cleanup() {
    [ -z "$container" ] || docker rm "$container" >/dev/null 2>&1 || true
    rm -rf "$work" "$IMAGE_OUT.partial" "$MODEL_OUT.partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

labels=$(docker image inspect --format '{{ json .Config.Labels }}' "$TAG" 2>/dev/null) \
    || fail "no image $TAG: build it first with ./build.sh $TAG"
# One value a line: file, name, sha256, kind.
weights=$("$PYTHON" -c '
import json, sys
labels = json.loads(sys.argv[1]) or {}
values = [labels.get("trackrad-xmem.weights." + key, "") for key in ("file", "name", "sha256", "kind")]
if not all(values):
    sys.exit(1)
print("\n".join(values))
' "$labels") || fail "image $TAG has no weights labels: build it with ./build.sh"
{ read -r file; read -r name; read -r sha; read -r kind; } <<<"$weights"
settings_sha=$("$PYTHON" -c '
import json, sys
print((json.loads(sys.argv[1]) or {}).get("trackrad-xmem.settings.sha256", ""))
' "$labels")

container=$(docker create "$TAG")
docker cp "$container:$APP_DIR/$file" "$work/$name" >/dev/null
if [ -n "$settings_sha" ]; then
    docker cp "$container:$APP_DIR/resources/pipeline.json" "$work/pipeline.json" >/dev/null
fi
docker rm "$container" >/dev/null
container=""
identity=$("$PYTHON" -m tools.download_weights --identify "$work/$name")  # sha256, size, release or -
[ "${identity%% *}" = "$sha" ] || fail "$file in $TAG has sha256 ${identity%% *}, not $sha as its label says"

if [ -n "$settings_sha" ]; then
    identity=$("$PYTHON" -m tools.download_weights --identify "$work/pipeline.json")
    [ "${identity%% *}" = "$settings_sha" ] \
        || fail "resources/pipeline.json in $TAG has sha256 ${identity%% *}, not $settings_sha as its label says"
fi

tar -czf "$MODEL_OUT.partial" -C "$work" "$name" ${settings_sha:+pipeline.json}
mv "$MODEL_OUT.partial" "$MODEL_OUT"
docker save "$TAG" | gzip -c >"$IMAGE_OUT.partial"
mv "$IMAGE_OUT.partial" "$IMAGE_OUT"
echo "$IMAGE_OUT: the image $TAG"
echo "$MODEL_OUT: its weights as /opt/ml/model/$name ($kind, sha256 ${sha:0:12})"
if [ -n "$settings_sha" ]; then
    echo "$MODEL_OUT: its settings as /opt/ml/model/pipeline.json (sha256 ${settings_sha:0:12})"
fi
