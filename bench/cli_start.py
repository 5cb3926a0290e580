"""Start-up of the command line: ``--version`` and ``--help`` against a bare interpreter.

Runs each command N times, alternately, and prints the medians and the ratios to
``python -c pass`` (target: at most 6x). The console script of the installed package is
used, as a user starts it (not a pyenv shim or ``python -m``).

    python bench/cli_start.py [--n 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=15)
    args = parser.parse_args()
    script = Path(sys.executable).parent / "proit-notify"
    exe = str(script) if script.exists() else shutil.which("proit-notify")
    if exe is None:
        sys.exit("proit-notify is not installed")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "proit-notify --version": [exe, "--version"],
        "proit-notify --help": [exe, "--help"],
        "proit-notify run-all --help": [exe, "run-all", "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.n):
        for name, command in commands.items():
            times[name].append(_time(command))
    bare = statistics.median(times["python -c pass"])
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:30s} {median * 1000:6.0f} ms  {median / bare:4.1f}x")


if __name__ == "__main__":
    main()
