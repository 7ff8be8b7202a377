"""The file server's entrypoint (`es4ps-files run | ready | home <name>`): a Samba member server of the domain.

`run` writes smb.conf from the settings, joins the domain with the computer
account's password from its Secret the first time (and again whenever the
join no longer holds), prepares the share folders, and runs winbindd and smbd
(and cupsd for the print share) in the foreground. Homes are made at a
person's first connection (`home`, smbd's root preexec) and nothing is ever
deleted from a home or a share.

    config    the file server's settings from the environment (docs/interfaces.md)
    smbconf   smb.conf of the member server: homes, group shares, the print share, SMB3 encryption
    folders   the homes' and shares' folders: made and owned, never emptied
    printing  CUPS with its PDF queue behind the print share
    resolver  dnsmasq sending the realm's names to the DC the server joins through (the Pod's DNS knows none)
    metrics   Prometheus' numbers: sessions, connections, open files, the trust, print jobs, the volume's usage
    cli       the command line and the supervised daemons
"""
