"""Backups and restores of a domain, the steps of the operator's Jobs: `es4ps-backup <step>`.

    dump-directory     samba-tool domain backup online of a running DC -> <work>/directory.tar.bz2
    store              <work>/{directory.tar.bz2, portal.db} + a manifest signed with the domain's backup
                       signing key -> one tar, encrypted to the domain's age recipient while it streams
                       -> the destination (a volume or S3); then deletes the archives retention lets go;
                       says where, how big and its SHA-256
    fetch              the archive -> checked -> decrypted with the identity -> unpacked into <work> ->
                       its signature checked with the key the restore trusts, and the backup's name
    restore-directory  <work>/directory.tar.bz2 -> a new DC's volume (samba-tool domain backup restore,
                       under a name the backup does not know), its Administrator password set to the
                       domain's; done once (a volume that holds a domain is left alone)

(the portal's database is dumped and restored by the portal image:
`es4ps-portal manage dump_database | restore_database`).

The archive never exists in clear outside the Pod: `age` encrypts it on its
way out (X25519 recipient from the domain's backup key Secret; the backup
Job gets only that public half), and decrypts it on its way in. By hand:

    age -d -i identity.txt acme-20261127-0200.tar.age | tar -x

    destinations  where archives go: a mounted volume or an S3-compatible bucket
    archive       the archive's format: a tar of plain files and a manifest, encrypted by `age`
    origin        who made an archive: the manifest's signature, and the check a restore makes
    steps         the steps above
    cli           the command line and the variables the operator sets

The store step writes its result as one JSON line, on stdout and into the
Pod's termination message, where the operator reads it:

    {"location": "volume:acme-backups/acme/acme-20261127-0200.tar.age", "sizeBytes": 123, "sha256": "..."}
"""
