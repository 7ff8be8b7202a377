#!/usr/bin/env bash
# Re-extracts the texts to translate into the catalogues (Django's makemessages): the portal's
# (images/django/es4ps_portal/locale) and the contract's (contract/es4ps_contract/locale), for every
# language the portal ships. New texts arrive untranslated; translate them (no fuzzy, no empty
# entries: tests/unit/portal/test_translations.py checks), then `hack/compile-translations.sh`.
#
#   hack/update-translations.sh [ROOT]   ROOT: a copy holding the two packages at their places (the test's)
set -euo pipefail
repository=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$repository}
languages=(pt_BR es)
# makemessages needs the portal's settings only to start Django; any values do.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
head -c 32 /dev/urandom | base64 > "$scratch/secret-key"
export DJANGO_SETTINGS_MODULE=es4ps_portal.settings DJANGO_SECRET_KEY_FILE="$scratch/secret-key" \
  ES4PS_PORTAL_HOST=localhost ES4PS_REALM=EXAMPLE.ORG ES4PS_ALLOWED_EMAIL_DOMAINS=example.org \
  ES4PS_DATA_DIR="$scratch/data"
# ... and the spec's values, which it has no defaults for: a domain's defaults, as the operator writes them.
eval "$("$repository/.venv/bin/python" -c 'import shlex
from es4ps_testkit.domains import portal_spec_env
print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in portal_spec_env().items()))')"
for package in "$root/images/django/es4ps_portal" "$root/contract/es4ps_contract"; do
  (cd "$package" && for language in "${languages[@]}"; do
    "$repository/.venv/bin/django-admin" makemessages --locale "$language" --no-obsolete --add-location file \
      --ignore 'static/*' >/dev/null
  done)
done
echo "catalogues updated: translate the new entries, then run hack/compile-translations.sh" >&2
