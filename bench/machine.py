"""The header every benchmark prints first: which machine, which software, which day.

A figure means something only beside the machine and day it was measured on, so each bench calls
``print_header()`` before its figures, and README figures are copied with these lines.
"""

from __future__ import annotations

import os
import platform
import ssl
from datetime import datetime
from importlib import metadata

LIBRARIES = ("sqlalchemy", "aiosmtplib", "cryptography", "mjml-python", "jinja2", "psycopg")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "? GiB"


def _versions() -> str:
    out = []
    for name in LIBRARIES:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


def header() -> list[str]:
    """The header lines: machine, software, date."""
    kind = os.environ.get("MAILER_MACHINE_KIND", "python-svc")
    return [
        f"# machine: {kind} ({platform.node()}), {os.cpu_count()} cores, {_cpu_model()}, {_memory_gib()}, "
        f"load {os.getloadavg()[0]:.2f}",
        f"# software: Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, {_versions()}",
        f"# date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
    ]


def print_header() -> None:
    for line in header():
        print(line, flush=True)


if __name__ == "__main__":
    print_header()
