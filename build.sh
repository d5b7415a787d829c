#!/usr/bin/env bash
# Build the grand-challenge image.  Usage: ./build.sh [TAG]   (default: trackrad-xmem)
set -euo pipefail
cd "$(dirname "$0")"
TAG="${1:-trackrad-xmem}"
docker build --platform linux/amd64 --tag "$TAG" .
echo "built $TAG"
