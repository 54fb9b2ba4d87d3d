"""Benchmark `vpbx number import` and `vpbx number list` with 100 000 numbers (issue 13, items 8 and 10).

Usage: .venv/bin/python bench/import_list.py [--rows N] [--keep DIR]
Writes a CSV of N distinct Ukrainian numbers (some with channels, direction and comment), imports it into a fresh
database with the real console script, then lists every number piped (TSV), as JSON and as CSV. Prints wall time and
peak memory (the child's max RSS) of each step. A benchmark, not a timed test: the targets are under 10 s and 200 MB
for the import, under 5 s for the list.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VPBX = str(REPO / ".venv" / "bin" / "vpbx")


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("number,channels,direction,comment\n")
        for i in range(rows):
            channels = str(4 + i % 5) if i % 3 == 0 else ""
            direction = "both" if i % 7 == 0 else ""
            fh.write(f"+38044{2000000 + i:07d},{channels},{direction},bench row {i}\n")


def run(label: str, args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, bytes]:
    """Run one command in a child process; its wall time, its own peak RSS in MB (wait4) and its stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([VPBX, *args], env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if proc.returncode != 0:
            sys.exit(f"{label} failed ({proc.returncode}): {err.read().decode(errors='replace')}")
    mb = usage.ru_maxrss / 1024
    print(f"{label:<26} {elapsed:7.2f} s  {mb:7.1f} MB max RSS  {len(stdout):>10} bytes on stdout")
    return elapsed, mb, stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vpbx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "numbers.csv"
    db = work / "bench.db"
    if db.exists():
        db.unlink()
    write_csv(csv_path, args.rows)
    env = {k: v for k, v in os.environ.items() if k != "VPBX_CONFIG"} | {"VPBX_DB": str(db)}
    print(f"{args.rows} rows, in {work}")
    # the import runs first and alone: its max RSS is the children's peak at that point
    _, _, out = run("number import", ["number", "import", str(csv_path)], env, work)
    assert out.decode().strip() == f"Imported {args.rows} numbers", out[-200:]
    _, _, out = run("number list (piped)", ["number", "list"], env, work)
    assert out.count(b"\n") == args.rows + 1, "one header line and one line per number"
    run("number list --format json", ["number", "list", "--format", "json"], env, work)
    run("number list --format csv", ["number", "list", "--format", "csv"], env, work)
    if not args.keep:
        for p in (csv_path, db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            if p.exists():
                p.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
