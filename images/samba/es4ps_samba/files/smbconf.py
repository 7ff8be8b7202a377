"""smb.conf of the file server, written whole on every start: a member server that requires SMB3 encryption.

People authenticate against the domain (winbind); Unix identities are the
directory's own uidNumber and gidNumber (idmap `ad`), so a home and a share
folder are owned by the numbers every domain computer shows. Who may connect to
a share is the share's `valid users`: the person for a home, members of the
share's groups for a group share, checked against the groups the DC puts in the
person's token at each connection (a person moved out of a group is refused at
the next one).
"""

from __future__ import annotations

from .config import FilesConfig, Share

# The print share's name and the CUPS queue behind it (es4ps_samba.files.printing makes the queue).
PRINT_SHARE = "pdf"
PRINT_QUEUE = "PDF"


def render(config: FilesConfig, command: str) -> str:
    """The whole smb.conf; `command` runs this entrypoint (`<command> home ...` makes a person's home before
    smbd serves it, `<command> share ...` a share's folder)."""
    sections = [_global(config)]
    if config.homes:
        sections.append(_homes(config, command))
    sections.extend(_group_share(config, share, command) for share in config.shares)
    if config.printing:
        sections.append(_print_share(config))
    return "\n".join(sections)


def dfree_script(config: FilesConfig, command: str) -> str:
    """The `dfree command` of the homes: smbd runs it as the person, without a shell, with the folder as its one
    argument (so a script, not a command line)."""
    return f'#!/bin/sh\nexec {command} dfree {config.homes_quota_bytes} "$1"\n'


def _section(name: str, options: dict[str, str]) -> str:
    return f"[{name}]\n" + "".join(f"  {key} = {value}\n" for key, value in options.items())


def _global(config: FilesConfig) -> str:
    low, high = config.id_range
    workgroup = config.workgroup
    data = config.data_dir
    options = {
        "workgroup": workgroup,
        "realm": config.realm,
        "netbios name": config.hostname.upper(),
        "server role": "member server",
        "security": "ads",
        # The DC to use, by name: the Pod's DNS is the cluster's, which knows no SRV records of the domain.
        "password server": config.join_server,
        "disable netbios": "yes",
        "smb ports": "445",
        # Everything that must outlive the Pod is on the volume; sockets and pid files stay in /run.
        "private dir": str(data / "private"),
        "state directory": str(data / "state"),
        "cache directory": str(data / "cache"),
        "lock directory": str(data / "lock"),
        # The computer's password is the one in its Secret: never rotated away from it.
        "machine password timeout": "0",
        "kerberos method": "secrets only",
        # SMB3 only, every session encrypted and signed; no guest, no anonymous listing.
        "server min protocol": "SMB3",
        "server smb encrypt": "required",
        "server signing": "mandatory",
        "map to guest": "never",
        "restrict anonymous": "2",
        "winbind use default domain": "yes",
        "winbind offline logon": "no",
        "idmap config * : backend": "tdb",
        "idmap config * : range": "3000-7999",
        f"idmap config {workgroup} : backend": "ad",
        f"idmap config {workgroup} : schema_mode": "rfc2307",
        f"idmap config {workgroup} : range": f"{low}-{high}",
        f"idmap config {workgroup} : unix_nss_info": "yes",
        f"idmap config {workgroup} : unix_primary_group": "yes",
        "log level": "1",
    }
    if config.printing:
        options.update({"printing": "cups", "printcap name": "cups", "load printers": "no"})
    else:
        options.update(
            {"printing": "bsd", "printcap name": "/dev/null", "load printers": "no", "disable spoolss": "yes"}
        )
    return _section("global", options)


def _homes(config: FilesConfig, command: str) -> str:
    # \\server\<name>: only <name> may connect; the folder is made (never emptied) before the connection.
    quota = {"dfree command": str(config.dfree_script)} if config.homes_quota_bytes else {}
    return _section(
        "homes",
        {
            **quota,
            "path": f"{config.homes_dir}/%S",
            "valid users": "%S",
            "browseable": "no",
            "read only": "no",
            "root preexec": f"{command} home {config.homes_dir} %S",
            "root preexec close": "yes",
            "create mask": "0600",
            "directory mask": "0700",
        },
    )


def _group_share(config: FilesConfig, share: Share, command: str) -> str:
    groups = " ".join(f'@"{group}"' for group in share.groups)
    access = "readWrite" if share.writable else "readOnly"
    return _section(
        share.name,
        {
            "path": str(config.shares_dir / share.name),
            "valid users": groups,
            "read only": "no" if share.writable else "yes",
            # Made (or its owner and mode set again) before each connection: the group may be newer than smbd.
            "root preexec": f'{command} share {config.shares_dir} {share.name} "{share.groups[0]}" {access}',
            "root preexec close": "yes",
            # Files stay the group's: new ones take the folder's group (setgid) and are group-writable.
            "create mask": "0660",
            "directory mask": "2770",
            "browseable": "yes",
        },
    )


def _print_share(config: FilesConfig) -> str:
    return _section(
        PRINT_SHARE,
        {
            "path": str(config.spool_dir),
            "printable": "yes",
            "printer name": PRINT_QUEUE,
            "browseable": "yes",
        },
    )
