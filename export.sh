#!/usr/bin/env bash
# Save a built image as the gzipped tarball grand-challenge accepts (docker save | gzip).
# Usage: ./export.sh [TAG]   (default: trackrad-xmem) -> <tag>_<YYYY-MM-DD>.tar.gz here.
set -euo pipefail
cd "$(dirname "$0")"
TAG="${1:-trackrad-xmem}"
OUT="${TAG//[:\/]/_}_$(date +%Y-%m-%d).tar.gz"
# Written under a temporary name first, so a failed save never leaves a plausible tarball.
docker save "$TAG" | gzip -c > "$OUT.partial"
mv "$OUT.partial" "$OUT"
echo "$OUT"
