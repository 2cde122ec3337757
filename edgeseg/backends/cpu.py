"""What this CPU can do, for the choices and warnings that depend on it (numpy only, no runtime)."""
from __future__ import annotations

import platform

X86_MACHINES = ("x86_64", "amd64", "i686", "i386")


def cpu_flags() -> set[str]:
    """This CPU's feature flags from /proc/cpuinfo (x86 ``flags``, ARM ``Features``); empty when
    unknown (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def is_x86() -> bool:
    return platform.machine().lower() in X86_MACHINES
