#!/usr/bin/env bash
set -euo pipefail
printf 'smoke %s\n' "$VERSION" >> "$RESULT_DIR/smoke.log"
