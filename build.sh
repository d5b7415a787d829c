#!/usr/bin/env bash
# Build the grand-challenge image with the XMem weights it runs.
#
#   ./build.sh [--weights official|project|PATH] [--url URL --sha256 HEX --size BYTES] [TAG]
#
#   --weights official   (default) the official checkpoint, resources/XMem.pth. If it is not
#                        there, `python -m tools.download_weights` fetches it once into its cache
#                        (outside the repository), checks size and sha256 and links it into
#                        resources/ for the build; the link is removed afterwards. --url, --sha256
#                        and --size fetch it from elsewhere (a mirror), checked against the values
#                        given. Without it the build stops before calling docker.
#   --weights project    the project's own weights only, resources/trackrad-xmem.pth (offline).
#   --weights PATH       a weights file of your own, built in as resources/XMem.pth.
#   TAG                  the image tag (default trackrad-xmem).
#
# resources/pipeline.json, the settings file of `python -m evaluation.calibrate`, goes into the
# image when it exists (the script says so, and warns when it was calibrated for other weights);
# without it the image runs the built-in settings.
#
# The image is labelled with the weights it runs (file, name, sha256, kind); ./export.sh reads
# the labels. The Dockerfile's last step runs the example case, so an image whose weights do not
# load is never built. Needs docker and python3 (standard library only; PYTHON=... picks another
# interpreter).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
OFFICIAL=resources/XMem.pth
PROJECT=resources/trackrad-xmem.pth
SETTINGS=resources/pipeline.json

usage() {
    echo "usage: ./build.sh [--weights official|project|PATH] [--url URL --sha256 HEX --size BYTES] [TAG]" >&2
    exit 2
}
fail() {
    echo "build.sh: $*" >&2
    exit 1
}

# shellcheck source=tools/docker.sh
. tools/docker.sh  # the working directory is the repository root (above)

weights=official
tag=""
download=()
while [ $# -gt 0 ]; do
    case "$1" in
        --weights) [ $# -ge 2 ] || usage; weights="$2"; shift 2 ;;
        --url | --sha256 | --size) [ $# -ge 2 ] || usage; download+=("$1" "$2"); shift 2 ;;
        -h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
        -*) usage ;;
        *) [ -z "$tag" ] || usage; tag="$1"; shift ;;
    esac
done
tag="${tag:-trackrad-xmem}"
if [ "$weights" != official ] && [ ${#download[@]} -gt 0 ]; then
    fail "--url, --sha256 and --size go with --weights official"
fi
if [ "$weights" != official ] && [ "$weights" != project ] && [ -f "$PROJECT" ] && cmp -s "$weights" "$PROJECT"; then
    weights=project
fi
check_docker  # before fetching any weights

# The weights file this script puts into resources/ for the build, removed again on exit.
placed=""
errors=$(mktemp)
trap 'rm -f "$errors" ${placed:+"$placed"}' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "$weights" in
    official)
        [ -e "$OFFICIAL" ] || placed="$OFFICIAL"
        # The downloader's progress (stdout) shows; its error line is replaced by one of ours.
        if ! "$PYTHON" -m tools.download_weights --name XMem.pth --dest resources \
            ${download[@]+"${download[@]}"} 2>"$errors"; then
            reason=$(tail -n 1 "$errors")
            fail "cannot get the official XMem checkpoint (${reason#error: }); get it with" \
                "\`python -m tools.download_weights\` (needs internet) or copy XMem.pth into resources/," \
                "or build with the project's weights: ./build.sh --weights project"
        fi
        file="$OFFICIAL"
        name=XMem.pth
        ;;
    project)
        [ -f "$PROJECT" ] || fail "$PROJECT does not exist; build with --weights official"
        [ ! -e "$OFFICIAL" ] || fail "$OFFICIAL exists and would run instead of the project's weights;" \
            "move it away (python -m tools.download_weights links it back from its cache) or build with --weights official"
        file="$PROJECT"
        name=trackrad-xmem.pth
        ;;
    *)
        [ -f "$weights" ] || fail "--weights $weights: no such file (give official, project or a weights file)"
        if [ -e "$OFFICIAL" ]; then
            cmp -s "$weights" "$OFFICIAL" || fail "$OFFICIAL exists and differs from $weights; move it away to build with $weights"
        else
            placed="$OFFICIAL"
            ln "$weights" "$OFFICIAL" 2>/dev/null || cp "$weights" "$OFFICIAL"
        fi
        file="$OFFICIAL"
        name=$(basename "$weights")
        case "$name" in *.pth) ;; *) name="$name.pth" ;; esac
        ;;
esac

identity=$("$PYTHON" -m tools.download_weights --identify "$file")  # sha256, size, release or -
read -r sha _ release <<<"$identity"
if [ "$weights" = project ]; then
    kind=project
elif [ "$release" != - ]; then
    kind=official
    name="$release"  # the model tarball's name for it, whatever the file was called
else
    kind=user
fi
echo "build.sh: the image runs $file (sha256 ${sha:0:12}, $kind)"
if [ "$file" = "$OFFICIAL" ] && [ -f "$PROJECT" ]; then
    echo "build.sh: it also holds $PROJECT (the project's fallback, not used while $OFFICIAL is there)"
fi
settings_label=()
if [ -f "$SETTINGS" ]; then
    # sha256 of the file, and the weights' sha256 it was calibrated for (- if none)
    settings=$("$PYTHON" -c '
import hashlib, json, sys
data = open(sys.argv[1], "rb").read()
try:
    made_for = (json.loads(data.decode("utf-8-sig")).get("provenance") or {}).get("weights_sha256") or "-"
except Exception as error:
    sys.exit(f"{type(error).__name__}: {error}")
print(hashlib.sha256(data).hexdigest(), made_for)
' "$SETTINGS" 2>"$errors") || fail "$SETTINGS is not a settings file ($(tail -n 1 "$errors")); write it with python -m evaluation.calibrate"
    read -r settings_sha made_for <<<"$settings"
    echo "build.sh: the image holds $SETTINGS (sha256 ${settings_sha:0:12}): the pipeline settings it runs"
    if [ "$made_for" != - ] && [ "$made_for" != "$sha" ]; then
        echo "build.sh: warning: $SETTINGS was calibrated for weights sha256 ${made_for:0:12}, not for these (${sha:0:12})" >&2
    fi
    settings_label=(--label "trackrad-xmem.settings.sha256=$settings_sha")
else
    echo "build.sh: no $SETTINGS: the image runs the built-in pipeline settings"
fi

docker build --platform linux/amd64 --tag "$tag" \
    --label "trackrad-xmem.weights.file=$file" \
    --label "trackrad-xmem.weights.name=$name" \
    --label "trackrad-xmem.weights.sha256=$sha" \
    --label "trackrad-xmem.weights.kind=$kind" \
    ${settings_label[@]+"${settings_label[@]}"} \
    . || fail "docker build failed (its output is above); nothing was tagged $tag"
echo "built $tag with $file ($kind, sha256 ${sha:0:12})"
