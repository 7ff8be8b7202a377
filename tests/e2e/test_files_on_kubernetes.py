"""The file server on the real node: spec.fileServices on the e2e domain runs the Samba image's `es4ps-files`
Pod, which joins the domain, and a person registered through the portal reaches their home through the
file server's Service with smbclient (SMB3, encrypted), with their password and with no other.

It shares the session's deployment: the domain gets file services for this test and loses them at its end
(the volume and the computer's Secret stay, as docs/files.md promises).
"""
# ruff: noqa: S105 - test passwords

from __future__ import annotations

import uuid

import pytest
from es4ps_testkit.file_server import smbclient_at
from es4ps_testkit.registration import GOOD_PASSWORD
from test_registration_on_kubernetes import WRONG_PASSWORD, register_and_verify

pytestmark = pytest.mark.e2e

FILES = {"storage": {"size": "1Gi"}, "homes": {"enabled": True, "quota": "100Mi"}}
NOTE = "written through the Service\n"


def files_ready(kube) -> bool:
    statefulset = kube.get("statefulset", "acme-files", "acme", check=False)
    return bool(statefulset) and statefulset.get("status", {}).get("readyReplicas", 0) == 1


def wait_files_ready(kube) -> None:
    """Until the file server's Pod is ready; else fail with what its Pod and container say."""
    try:
        kube.eventually(lambda: files_ready(kube), timeout=300, interval=3, message="the file server Pod ready")
    except AssertionError as exc:
        pod = kube.get("pod", "acme-files-0", "acme", check=False)
        logs = kube.kubectl("logs", "acme-files-0", "-n", "acme", "--tail=60", check=False)
        raise AssertionError(f"{exc}\n{pod.get('status')}\n{logs.stdout}{logs.stderr}") from None


def test_a_registered_person_reaches_their_home_through_the_file_servers_service(deployment, tmp_path):
    kube = deployment.kube
    username = f"fs{uuid.uuid4().hex[:6]}"
    deployment.install(fileServices=FILES)
    try:
        # The person registers while the file server starts and joins the domain.
        assert register_and_verify(deployment, deployment.person(), username)["state"] == "ready"
        wait_files_ready(kube)
        address = kube.get("service", "acme-files", "acme")["spec"]["clusterIP"]
        container = kube.get("statefulset", "acme-files", "acme")["spec"]["template"]["spec"]["containers"][0]
        env = {variable["name"]: variable.get("value", "") for variable in container["env"]}
        workgroup = env["ES4PS_NETBIOS_NAME"] or deployment.realm.split(".")[0]
        (tmp_path / "note.txt").write_text(NOTE)

        def smb(password: str, command: str):
            return smbclient_at(address, workgroup, username, username, password, command, tmp_path)

        wrote = smb(GOOD_PASSWORD, "put note.txt; ls")
        assert wrote.returncode == 0, wrote.stdout + wrote.stderr
        assert "note.txt" in wrote.stdout
        # On the Pod's volume, in the person's home, theirs.
        home = f"/var/lib/samba/homes/{username}"
        stored = kube.kubectl("exec", "acme-files-0", "-n", "acme", "--", "stat", "-c", "%U %a", home).stdout
        assert stored.split() == [username, "700"], stored
        read = kube.kubectl("exec", "acme-files-0", "-n", "acme", "--", "cat", f"{home}/note.txt").stdout
        assert read == NOTE
        refused = smb(WRONG_PASSWORD, "ls")
        assert refused.returncode != 0 and "NT_STATUS_LOGON_FAILURE" in refused.stdout + refused.stderr
    finally:
        deployment.install()  # the domain as the session's other tests know it
