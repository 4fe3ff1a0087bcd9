#!/usr/bin/env bash
# Creates the Python venv with the SMTP test server (aiosmtpd) used by the issuer's integration tests.
set -euo pipefail
VENV="${TICKETS_VENV:-$HOME/.cache/tickets/venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r "$(dirname "$0")/requirements.txt"
fi
echo "TICKETS_PYTHON=$VENV/bin/python"
