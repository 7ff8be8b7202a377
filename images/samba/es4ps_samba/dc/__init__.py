"""The Samba AD DC entrypoint: `es4ps-samba-dc run | prepare | ready | live | leave | remove | dbcheck |
delegate`.

`run` provisions the domain (or joins an existing one) the first time, brings
what it owns up to date on every start (smb.conf options, the LDAPS files, the
worker's account and delegated rights, the password policy), and then runs `samba` in the
foreground, restarting it when the mounted LDAPS certificate is renewed.
Everything the DC writes lives under `ES4PS_DATA_DIR` (the volume), so a
restarted Pod finds its domain again.

    config      the DC's settings from the environment (docs/interfaces.md)
    smbconf     the smb.conf [global] options the entrypoint owns
    tls         the LDAPS certificate files
    domain      provision or join once, then converge on every start
    access      the managed OU, the worker's account and its delegated rights
    password_policy  the domain's password policy as the domain object's attributes (applied by dc0)
    probes      readiness and liveness
    health      the health endpoint: replication as this DC sees it, metrics
    supervisor  samba as a child process: signals, certificate renewal, orphans
    lifecycle   a DC leaving the domain (the operator's Jobs): hand over, then be removed
    delegation  `delegate`: an administrator gives a directory ES4PS does not run the same rights on an OU
    legacy_accounts  `move-legacy-accounts`: an administrator moves ES4PS-Containers' accounts into the managed OU
    cli         the command line
"""
