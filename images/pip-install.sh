#!/bin/sh
# `pip install` for image builds. When the build argument EXTRA_CA_CERTS holds PEM
# certificates (the CA of a TLS-intercepting proxy between the builder and PyPI),
# pip trusts them for this install only; nothing of them stays in the image.
set -eu
if [ -n "${EXTRA_CA_CERTS:-}" ]; then
  bundle=$(mktemp)
  trap 'rm -f "$bundle"' EXIT
  cat /etc/ssl/certs/ca-certificates.crt > "$bundle"
  printf '%s\n' "$EXTRA_CA_CERTS" >> "$bundle"
  export PIP_CERT="$bundle"
fi
pip install "$@"
