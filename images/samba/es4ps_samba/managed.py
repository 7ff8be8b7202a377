"""What the DC's entrypoint prepares in the directory and the worker relies on, named once for both.

- `BINDING_ATTRIBUTE`: where each managed account carries its binding line
  (es4ps_samba.worker.binding). No property set SELF may write holds it, and
  the managed OU denies writing it to everyone but the worker's account
  (es4ps_samba.dc.access).
- `DELETED_REGISTRATIONS`: a container under the managed OU holding one
  object per deleted registration (its name is the registration's id), so that
  every DC's worker refuses a create of that registration, however late it
  comes and whichever DC it reaches. Only the worker's account may create
  objects there.
"""

from __future__ import annotations

BINDING_ATTRIBUTE = "adminDescription"
# Relative to the managed OU.
DELETED_REGISTRATIONS = "CN=Deleted registrations"
# The object class of a deleted registration's record: no security principal (it takes no RID).
DELETED_REGISTRATION_CLASS = "container"
