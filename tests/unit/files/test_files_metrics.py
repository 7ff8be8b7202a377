"""The file server's metrics count what smbstatus reports without naming anyone (es4ps_samba.files.metrics)."""

from __future__ import annotations

from es4ps_samba.files.metrics import smb_activity


def test_connections_to_homes_count_under_homes_and_smbds_own_share_not_at_all():
    status = {
        "sessions": {
            "1": {"username": "ana", "encryption": {"cipher": "AES-128-GCM", "degree": "full"}},
            "2": {"username": "bo", "encryption": {"cipher": "AES-128-GCM", "degree": "full"}},
            "3": {"username": "cy", "encryption": {"cipher": "", "degree": "none"}},
        },
        "tcons": {
            "a": {"service": "ana"},
            "b": {"service": "bo"},
            "c": {"service": "Students"},
            "d": {"service": "IPC$"},
            "e": {"service": "pdf"},
        },
        "open_files": {"/v/homes/ana/a.txt": {}, "/v/shares/students/b.txt": {}},
    }
    activity = smb_activity(status, {"students"})
    assert activity.sessions == {"AES-128-GCM": 2, "none": 1}
    # No label carries a person's name: their homes are `homes`; the share keeps its declared spelling.
    assert activity.connections == {"homes": 2, "students": 1, "pdf": 1}
    assert activity.open_files == 2


def test_an_idle_server_reports_nothing_open():
    # smbstatus leaves out the sections it has nothing for.
    activity = smb_activity({"timestamp": "now", "version": "4.17.12"}, {"students"})
    assert (activity.sessions, activity.connections, activity.open_files) == ({}, {}, 0)
