"""Running a script's `main()` so that bad input ends with one clear line instead of a traceback."""

import os
import sys


def run_main(main, script_name: str) -> None:
    """Call `main()`; a `ValueError`/`FileNotFoundError` (the scripts' bad-input errors) exits with
    `"<script_name>: error: <message>"`. Set `A2MIM_TRACEBACK=1` to get the full traceback instead."""
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("A2MIM_TRACEBACK"):
            raise
        sys.exit(f"{script_name}: error: {error}")
