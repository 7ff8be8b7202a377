#!/usr/bin/env bash
# Compiles the translation catalogues (locale/*/LC_MESSAGES/django.po -> .mo) of the portal and the
# contract with GNU msgfmt (Debian's gettext), where a .po is newer than its .mo. The .mo files are
# build output, not in git: `make setup` runs this, the portal image's build does the same.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
find "$root" -path '*/locale/*/LC_MESSAGES/django.po' -not -path '*/.venv/*' -print0 |
  while IFS= read -r -d '' catalogue; do
    compiled=${catalogue%.po}.mo
    if [ ! -e "$compiled" ] || [ "$catalogue" -nt "$compiled" ]; then
      msgfmt --check --output-file "$compiled" "$catalogue"
    fi
  done
