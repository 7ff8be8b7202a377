"""The domain's file server serves registered people: homes, a group share that follows the directory, printing.

The real pipeline registers people (the live portal, RabbitMQ, the worker, the
Samba DC); the file server is the product's entrypoint (`es4ps-files run`:
winbindd, smbd, cupsd with cups-pdf) joined to that domain as its own
computer, in namespaces of its own (es4ps_testkit.file_server). Clients are
`smbclient` on this machine, as the people themselves, with their passwords.
The live portal's policy puts students.<allowed domain> into the group
`students`; the file server shares `students` to that group.
"""
# ruff: noqa: S105, S106 - test passwords

from __future__ import annotations

import subprocess

import pytest
from es4ps_localcluster.processes import wait_until
from es4ps_testkit.file_server import smbclient
from es4ps_testkit.live_portal import staff_action
from es4ps_testkit.plugins.services import TEST_HOMES_QUOTA_BYTES
from es4ps_testkit.registration import ALLOWED_DOMAIN, GOOD_PASSWORD, unique_username

pytestmark = pytest.mark.services

STUDENTS = f"students.{ALLOWED_DOMAIN}"
NOTE = "a note of my own\n"


@pytest.fixture
def note(file_server):
    """A file to send, in the folder smbclient runs in."""
    (file_server.directory / "note.txt").write_text(NOTE)
    return "note.txt"


def test_a_person_reads_and_writes_their_home_and_cannot_list_another_s(
    live_portal, mail_catcher, file_server, username, note
):
    other = unique_username("t")
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    live_portal.ready_person(mail_catcher, other, domain=STUDENTS)
    home = file_server.data_dir / "homes" / username
    assert not home.exists()

    wrote = smbclient(file_server, username, username, GOOD_PASSWORD, f"put {note}; ls")
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    # Made at the first connection, the person's own (the directory's uid), closed to everyone else.
    uid = int(file_server.passwd(username)["uid"])
    assert (home.stat().st_uid, home.stat().st_mode & 0o777) == (uid, 0o700)
    assert (home / note).read_text() == NOTE
    # The quota is what the client sees as the home's size (es4ps-files dfree).
    assert f"{TEST_HOMES_QUOTA_BYTES // 1024} blocks of size 1024" in wrote.stdout
    read = smbclient(file_server, username, username, GOOD_PASSWORD, f"get {note} back.txt")
    assert read.returncode == 0, read.stdout + read.stderr
    assert (file_server.directory / "back.txt").read_text() == NOTE

    # The other person's home exists (they connected once); the first person can neither list nor write it.
    assert smbclient(file_server, other, other, GOOD_PASSWORD, "ls").returncode == 0
    for command in ("ls", f"put {note}"):
        refused = smbclient(file_server, other, username, GOOD_PASSWORD, command)
        assert refused.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in refused.stdout + refused.stderr
    assert not (file_server.data_dir / "homes" / other / note).exists()
    # A wrong password gets nothing either.
    assert smbclient(file_server, username, username, "Not-The-Horse-48", "ls").returncode != 0


def test_only_smb3_with_encryption_is_served(live_portal, mail_catcher, file_server, username):
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    # A client that stops at SMB 2.1 (no SMB3 encryption) is refused at negotiation.
    old = smbclient(file_server, username, username, GOOD_PASSWORD, "ls", "--option=client max protocol = SMB2_10")
    assert old.returncode != 0 and "NT_STATUS" in old.stdout + old.stderr
    # A session the server accepted is encrypted, as the server itself reports it while the session is open (the
    # only session at this moment: smbstatus names its user by uid when winbind's cache has no name yet).
    # smbclient reads its commands from stdin: the session stays open until the test closes it.
    with subprocess.Popen(
        ["smbclient", f"//{file_server.address}/{username}", "--configfile=/dev/null", "--use-kerberos=off",
         "-W", file_server.dc.netbios_name, "-U", username],
        env={"PATH": "/usr/bin:/bin", "PASSWD": GOOD_PASSWORD}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    ) as client:  # fmt: skip

        def session_row():
            if client.poll() is not None:
                raise AssertionError(f"smbclient ended: {client.stdout.read()}")
            rows = file_server.run("smbstatus", "--processes").stdout.splitlines()
            sessions = [row for row in rows if row.split() and row.split()[0].isdigit()]
            return next((row for row in sessions if "auth in progress" not in row), None)

        row = wait_until(session_row, 60, "the session in smbstatus", interval_s=0.5)
        client.communicate("exit\n", timeout=30)
    assert "AES-" in row, row


def test_a_group_share_follows_group_membership(live_portal, mail_catcher, file_server, samba_dc, username, note):
    outsider = unique_username("t")
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    live_portal.ready_person(mail_catcher, outsider)  # no policy: no group
    wrote = smbclient(file_server, "students", username, GOOD_PASSWORD, f"put {note} {username}.txt; ls")
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    shared = file_server.data_dir / "shares" / "students" / f"{username}.txt"
    assert shared.read_text() == NOTE
    refused = smbclient(file_server, "students", outsider, GOOD_PASSWORD, "ls")
    assert refused.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in refused.stdout + refused.stderr

    # Staff move the person out of the group in the directory: the next connection is refused.
    samba_dc.samdb().add_remove_group_members("students", [username], add_members_operation=False)
    wait_until(
        lambda: smbclient(file_server, "students", username, GOOD_PASSWORD, "ls").returncode != 0,
        60,
        "the share to refuse a person moved out of its group",
    )
    # Their own home still opens, and what they wrote in the share is still there.
    assert smbclient(file_server, username, username, GOOD_PASSWORD, "ls").returncode == 0
    assert shared.read_text() == NOTE


def test_a_disabled_account_gets_nothing(live_portal, mail_catcher, file_server, username, note):
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    assert smbclient(file_server, username, username, GOOD_PASSWORD, f"put {note}").returncode == 0
    assert smbclient(file_server, "students", username, GOOD_PASSWORD, "ls").returncode == 0
    staff = live_portal.signed_in_staff()
    assert "done for 1 account" in staff_action(staff, "disable", username, live_portal.user_pk(username))

    for share in (username, "students", "pdf"):
        wait_until(
            lambda share=share: smbclient(file_server, share, username, GOOD_PASSWORD, "ls").returncode != 0,
            60,
            f"{share} to refuse the disabled account",
        )
    # Disabled, not emptied: the home keeps its files.
    assert (file_server.data_dir / "homes" / username / note).read_text() == NOTE


def test_a_person_prints_through_smb_and_the_job_arrives(live_portal, mail_catcher, file_server, username, note):
    live_portal.ready_person(mail_catcher, username, domain=STUDENTS)
    assert file_server.printed(username) == []
    # smbd starts Samba's print RPC service at the first job; on a loaded machine that first start can outlast
    # smbd's wait (NT_STATUS_IO_TIMEOUT, no job made): a client tries again, as Windows does.
    wait_until(
        lambda: smbclient(file_server, "pdf", username, GOOD_PASSWORD, f"print {note}").returncode == 0,
        90,
        "the print share to take the job",
        interval_s=2,
    )

    # CUPS turned the job into a PDF (cups-pdf), in the person's folder, theirs: whole once it ends with %%EOF.
    def whole_pdf():
        pdfs = file_server.printed(username)
        return pdfs and pdfs[0].read_bytes().rstrip().endswith(b"%%EOF")

    wait_until(whole_pdf, 60, "the printed PDF", interval_s=1)
    pdf = file_server.printed(username)[0]
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_uid == int(file_server.passwd(username)["uid"])
