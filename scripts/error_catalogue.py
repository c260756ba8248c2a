"""Print the bad-input catalogue (tests/catalogue.py) as a Markdown table with the exact message
each case gets, its folder shown as DIR; for docs/reliability.md.

    python scripts/error_catalogue.py > /tmp/catalogue.md
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from catalogue import CASES  # noqa: E402

from ssavae.cli import main  # noqa: E402


def message(case) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                argv = case.argv(Path(tmp))
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                rc = main(argv)
        finally:
            os.chdir(here)
        line = next((ln for ln in err.getvalue().splitlines() if ": error: " in ln), "(no error line)")
        return rc, line.replace(str(Path(tmp).resolve()), "DIR").replace(tmp, "DIR")


def main_() -> None:
    logging.disable(logging.WARNING)
    print("| # | id | the mistake | exit | message |\n|---:|---|---|---:|---|")
    for i, case in enumerate(CASES, 1):
        rc, line = message(case)
        print(f"| {i} | `{case.id}` | {case.what} | {rc} | `{line.replace('|', '/')}` |", flush=True)


if __name__ == "__main__":
    main_()
