"""What the benchmark reports say about when and where they ran."""

import datetime
import platform
import re
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from `/proc/cpuinfo`, else what `platform` knows."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def utc_timestamp() -> str:
    """Now, as the reports print it: `YYYY-MM-DD HH:MM UTC`."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
