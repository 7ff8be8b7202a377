#!/usr/bin/env bash
# Makes .venv from Debian's python3 with system site packages (so `import samba`
# works) and installs the pinned requirements. Reinstalls only when a
# requirements file changed (a stamp holds their hash).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.venv
cd "$root"

if [ ! -x "$venv/bin/python" ] || ! grep -q '^include-system-site-packages = true' "$venv/pyvenv.cfg" 2>/dev/null; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi

inputs=(requirements-dev.txt requirements.lock operator/requirements.txt images/django/requirements.txt
        images/samba/requirements.txt contract/pyproject.toml localcluster/pyproject.toml devtools/pyproject.toml
        testkit/pyproject.toml operator/pyproject.toml images/django/pyproject.toml images/samba/pyproject.toml)
stamp=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.es4ps-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "installing Python requirements into .venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt -c requirements.lock
  echo "$stamp" > "$venv/.es4ps-stamp"
fi
"$venv/bin/python" -c 'import samba, es4ps_contract, es4ps_localcluster, es4ps_devtools, es4ps_testkit' ||
  { echo "setup-venv: samba, the contract, the local cluster, the devtools or the test kit is not importable from .venv" >&2; exit 1; }
