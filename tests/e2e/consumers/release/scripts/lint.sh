#!/usr/bin/env bash
set -euo pipefail
printf 'lint\n' >> "$RESULT_DIR/lint.log"
