"""The queries every registration, login, status page and expiry round makes use an index, on SQLite and
PostgreSQL: at 50 000 users a full scan per registration is what bench/portal_scale.py measured before."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest
from es4ps_localcluster.paths import VENV_BIN
from es4ps_testkit.domains import portal_spec_env
from es4ps_testkit.portal_queries import plans
from es4ps_testkit.registration import ALLOWED_DOMAIN, ORGANIZATION_NAME


def assert_every_plan_uses_its_index(found: dict[str, dict[str, str]]) -> None:
    missing = {name: entry["plan"] for name, entry in found.items() if entry["index"] not in entry["plan"]}
    assert not missing, f"plans without their index: {missing}"


@pytest.mark.django_db
def test_the_hot_queries_use_their_indexes_on_sqlite():
    assert_every_plan_uses_its_index(plans())


@pytest.mark.services
def test_the_hot_queries_use_their_indexes_on_postgresql(postgres, tmp_path):
    secret_key = tmp_path / "secret-key"
    secret_key.write_text(secrets.token_urlsafe(50))
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        **portal_spec_env(),
        "DJANGO_SECRET_KEY_FILE": str(secret_key),
        "ES4PS_PORTAL_HOST": "testserver",
        "ES4PS_ORGANIZATION_NAME": ORGANIZATION_NAME,
        "ES4PS_REALM": "ES4PS.TEST",
        "ES4PS_ALLOWED_EMAIL_DOMAINS": ALLOWED_DOMAIN,
        "ES4PS_DATA_DIR": str(tmp_path / "data"),
        "ES4PS_DATABASE_URL": postgres.create_database("portal_queries"),
    }

    def manage(*args: str) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "es4ps-portal"), "manage", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    manage("migrate", "--no-input", "-v0")
    printed = manage("shell", "-c", "from es4ps_testkit.portal_queries import print_plans; print_plans()")
    assert_every_plan_uses_its_index(json.loads(printed.strip().splitlines()[-1]))
