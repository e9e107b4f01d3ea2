#!/usr/bin/env bash
# Stand-in build: a real one builds the image and pushes it; the workflow only needs its name.
set -euo pipefail
printf 'image=registry.example/triptrip-api:%s\n' "$VERSION" >> "$GITHUB_OUTPUT"
printf 'built %s\n' "$VERSION" >> "$RESULT_DIR/build.log"
