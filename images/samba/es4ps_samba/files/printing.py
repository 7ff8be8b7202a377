"""CUPS behind the print share: cupsd on its local socket only, and a PDF printer (cups-pdf) as its queue.

Each printed job becomes a PDF in the person's folder under `printed/` on the
volume. The queue is added again on every start (lpadmin converges).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .config import FilesConfig
from .smbconf import PRINT_QUEUE

CUPS_DIR = Path("/etc/cups")
CUPS_SOCKET = Path("/run/cups/cups.sock")
PDF_PPD = Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd")

# Only the local socket: smbd and lpadmin in this container reach CUPS, nothing else does.
CUPSD_CONF = """LogLevel warn
Listen /run/cups/cups.sock
Browsing No
WebInterface No
DefaultAuthType None
<Location />
  Order allow,deny
  Allow localhost
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""
CUPS_FILES_CONF = "ErrorLog stderr\nAccessLog none\nPageLog none\nSystemGroup root\n"


def cups_pdf_conf(config: FilesConfig) -> str:
    """cups-pdf's settings: a PDF per job in printed/<person>, owned by the person."""
    printed = config.printed_dir
    return f"Out {printed}/${{USER}}\nAnonDirName {printed}/ANONYMOUS\nUserUMask 0077\nGrp lp\nLog {printed}/.log\n"


def write_cups_files(config: FilesConfig) -> None:
    """cupsd's configuration and cups-pdf's, written whole on every start."""
    (CUPS_DIR / "ppd").mkdir(parents=True, exist_ok=True)
    CUPS_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    (CUPS_DIR / "cupsd.conf").write_text(CUPSD_CONF)
    (CUPS_DIR / "cups-files.conf").write_text(CUPS_FILES_CONF)
    (CUPS_DIR / "cups-pdf.conf").write_text(cups_pdf_conf(config))


def cupsd_command() -> list[str]:
    return ["cupsd", "-f", "-c", str(CUPS_DIR / "cupsd.conf"), "-s", str(CUPS_DIR / "cups-files.conf")]


def add_pdf_queue() -> None:
    """The PDF queue, enabled and accepting jobs (again on every start: lpadmin replaces it)."""
    subprocess.run(  # noqa: S603, S607
        ["lpadmin", "-h", str(CUPS_SOCKET), "-p", PRINT_QUEUE, "-E", "-v", "cups-pdf:/", "-P", str(PDF_PPD)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
