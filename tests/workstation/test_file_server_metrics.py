"""The file server's metrics move with what people do: connect, write to their home and a share, print.

The file server is the real entrypoint (es4ps_testkit.file_server, the
session's `file_server`), its /metrics read as Prometheus reads it
(prometheus-client's parser) at its own address; people are registered through
the real portal and reach it with `smbclient`.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import os
import subprocess

import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.file_server import smbclient
from es4ps_testkit.metrics import scrape
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD

pytestmark = pytest.mark.services

STUDENTS = f"students.{ALLOWED_DOMAIN}"
NOTE = "a note of my own, long enough to take a block of its own\n" * 200


def _open_session(file_server, share: str, username: str) -> subprocess.Popen:
    """smbclient connected to `share` as `username`, its session held open until its stdin says `exit`."""
    return subprocess.Popen(
        ["smbclient", f"//{file_server.address}/{share}", "--configfile=/dev/null", "--use-kerberos=off",
         "-W", file_server.dc.netbios_name, "-U", username],
        env={"PATH": "/usr/bin:/bin", "PASSWD": GOOD_PASSWORD}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_sessions_homes_shares_and_prints_are_counted(live_portal, mail_catcher, file_server, username):
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    (file_server.directory / "metrics-note.txt").write_text(NOTE)
    before = scrape(file_server.metrics_url)
    assert before.value("es4ps_files_trust_ok") == 1
    assert before.value("es4ps_files_homes_quota_bytes") == file_server.homes_quota_bytes

    # An open session shows as one more session, encrypted, connected to `homes` (never by the person's name).
    with _open_session(file_server, username, username) as client:

        def connected():
            if client.poll() is not None:
                raise AssertionError(f"smbclient ended: {client.stdout.read()}")
            now = scrape(file_server.metrics_url)
            return now if now.value("es4ps_files_connections", share="homes") > 0 else None

        during = wait_until(connected, 60, "the open session in the metrics", interval_s=0.5)
        client.communicate("exit\n", timeout=30)
    encrypted = sum(value for name, labels, value in during.samples
                    if name == "es4ps_files_sessions" and labels["encryption"].startswith("AES-"))  # fmt: skip
    assert encrypted >= 1 and during.value("es4ps_files_sessions", encryption="none") == 0
    assert not any(username in str(labels.values()) for _name, labels, _value in during.samples)

    # What the person writes to their home and to the group share, and prints, is counted at the next walk.
    for share, command in ((username, "put metrics-note.txt"), ("students", f"put metrics-note.txt {username}.txt")):
        wrote = smbclient(file_server, share, username, GOOD_PASSWORD, command)
        assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    wait_until(
        lambda: smbclient(file_server, "pdf", username, GOOD_PASSWORD, "print metrics-note.txt").returncode == 0,
        90,
        "the print share to take the job",
        interval_s=2,
    )

    def counted():
        now = scrape(file_server.metrics_url)
        grew = (
            now.value("es4ps_files_homes") == before.value("es4ps_files_homes") + 1,
            now.value("es4ps_files_homes_bytes") >= before.value("es4ps_files_homes_bytes") + len(NOTE),
            now.value("es4ps_files_share_bytes", share="students")
            >= before.value("es4ps_files_share_bytes", share="students") + len(NOTE),
            now.value("es4ps_files_printed_documents") == before.value("es4ps_files_printed_documents") + 1,
        )
        return now if all(grew) else None

    after = wait_until(counted, 90, "the home, the share and the printed file in the metrics", interval_s=1)
    assert after.value("es4ps_files_volume_free_bytes") < after.value("es4ps_files_volume_size_bytes")
    # The session ended: no connection to a home is left open.
    wait_until(
        lambda: scrape(file_server.metrics_url).value("es4ps_files_connections", share="homes") == 0,
        60,
        "the closed session to leave the metrics",
    )


def test_a_home_past_its_quota_is_counted_and_shows_no_space_left(live_portal, mail_catcher, file_server, username):
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    big = file_server.directory / f"{username}.bin"
    big.write_bytes(os.urandom(1024) * (file_server.homes_quota_bytes // 1024 + 1024))  # the quota and 1 MiB
    before = scrape(file_server.metrics_url)
    try:
        wrote = smbclient(file_server, username, username, GOOD_PASSWORD, f"put {big.name}; ls")
    finally:
        big.unlink()
    # The volume has no file system quotas (docs/files.md, "Quota"): the write is not refused; the home shows
    # no space left (one block: smbd would read 0 as 1024), and the home counts as over its quota.
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    assert f"{file_server.homes_quota_bytes // 1024} blocks of size 1024. 1 blocks available" in wrote.stdout
    wait_until(
        lambda: (
            scrape(file_server.metrics_url).value("es4ps_files_homes_over_quota")
            == before.value("es4ps_files_homes_over_quota") + 1
        ),
        60,
        "the home over its quota in the metrics",
    )


def test_the_trust_gauge_falls_when_the_domain_no_longer_knows_the_servers_password(file_server, samba_dc):
    # As if the computer's password were reset in the directory (an administrator's mistake, a restored DC).
    computer = f"(sAMAccountName={file_server.hostname.upper()}$)"
    assert scrape(file_server.metrics_url).value("es4ps_files_trust_ok") == 1
    samba_dc.samdb().setpassword(computer, "Other-" + file_server.machine_password)
    try:
        wait_until(
            lambda: scrape(file_server.metrics_url).value("es4ps_files_trust_ok") == 0,
            60,
            "the trust gauge to fall",
        )
    finally:
        # The password of the server's Secret again: the trust holds again, and the other tests' server with it.
        samba_dc.samdb().setpassword(computer, file_server.machine_password)
    wait_until(
        lambda: scrape(file_server.metrics_url).value("es4ps_files_trust_ok") == 1, 60, "the trust gauge to rise"
    )
