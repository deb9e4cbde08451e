"""Whole-process wall time of the ``qsn`` commands, cold (empty compile cache) against warm (populated).

    python bench/bench_startup.py                   # 3 repeats of each command and cache state
    python bench/bench_startup.py --repeats 5 --states cold warm

Each command runs as ``python -m qsn ...`` (what the ``qsn`` script runs) in a fresh process with its own
``XDG_CACHE_HOME``, so it uses qsn's persistent compile cache (:mod:`qsn.compile_cache`) in one of three
states:

* ``off``: ``QSN_COMPILE_CACHE=0``, the behaviour before the cache (nothing read or written);
* ``cold``: an empty cache directory, new for every run (the first run on a machine: compiles, then writes);
* ``warm``: a directory filled by one untimed priming run of the same command (every later run).

The commands, each with ``--json`` so that the process reports its own phases:

* ``help``: ``qsn --help``, the floor every command pays (Python, JAX and qsn imports, the parser);
* ``demo``: ``qsn demo -n 10000 --duration 100`` (a smaller size than the default 100,000 neurons for 1 s,
  whose 1e9 neuron-steps of simulation alone take longer than the startup measured here), PNG to a temp dir;
* ``network``: ``qsn network cuba`` at its default 1000 ms; ``network-native`` the same on ``--backend native``
  (its kernel library is built once per machine, in the cold runs too, and kept in qsn's kernel cache);
* ``schedule``: ``qsn schedule --scenario batch --policy fusion`` (1000 tasks, 8 workers, the defaults).

Runs are interleaved (for each repeat, each command: off, cold, warm) so that load from other processes
falls on every state alike; rows give every run and a summary gives min and median. Writes
``bench/results/startup-<platform>.json`` ({metadata, rows, summary}) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_population  # noqa: E402  (metadata helpers)

COMMANDS = {
    "help": ["--help"],
    "demo": ["demo", "-n", "10000", "--duration", "100", "--json", "--out", "{tmp}/demo.png"],
    "network": ["network", "cuba", "--json", "--no-progress"],
    "network-native": ["network", "cuba", "--backend", "native", "--json", "--no-progress"],
    "schedule": ["schedule", "--scenario", "batch", "--policy", "fusion", "--json"],
}
STATES = ("off", "cold", "warm")
TARGET_WARM_S = 5.0


def _env(xdg: Path, state: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "QSN_COMPILE_CACHE")}
    env["XDG_CACHE_HOME"] = str(xdg)
    if state == "off":
        env["QSN_COMPILE_CACHE"] = "0"
    return env


def _phases(command: str, stdout: str) -> dict:
    """The times the process reports about itself (``--json`` output), by phase."""
    if command == "help":
        return {}
    out = json.loads(stdout)
    if command == "demo":
        return {"run_s (timed, excl. compile)": out["wall_s"]}
    if command.startswith("network"):
        return {"build_s": out["build_s"], "run_s (incl. compile)": out["run_s (incl. compile)"]}
    return {"plan_s": out["plan_s"], "run_s": out["run_s"]}  # (online policies decide during the run)


def _run(command: str, xdg: Path, state: str, tmp: Path) -> dict:
    argv = [sys.executable, "-m", "qsn", *(a.format(tmp=tmp) for a in COMMANDS[command])]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=_env(xdg, state), capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    cache = xdg / "qsn" / "jax"
    entries = sum(1 for p in cache.iterdir() if p.name.endswith("-cache")) if cache.is_dir() else 0
    return {"command": command, "state": state, "wall_s": wall, "cache_entries_after": entries,
            **_phases(command, proc.stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command in each state (default 3)")
    parser.add_argument("--commands", nargs="+", choices=tuple(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--states", nargs="+", choices=STATES, default=list(STATES))
    parser.add_argument("--commit", help="commit the tree was exported from, when it is not a git checkout")
    parser.add_argument("--out", help="JSON path (default bench/results/startup-<platform>.json)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    device = jax.devices()[0]
    metadata = bench_population.run_metadata("startup", __file__, argv, device)
    if metadata["git_commit"] is None and args.commit:
        metadata["git_commit"] = args.commit
    metadata.update(
        repeats=args.repeats,
        commands={c: "python -m qsn " + " ".join(COMMANDS[c]) for c in args.commands},
        states={"off": "QSN_COMPILE_CACHE=0", "cold": "empty XDG_CACHE_HOME, new for every run",
                "warm": "XDG_CACHE_HOME filled by one untimed priming run of the same command"},
        load_average_start=os.getloadavg(),
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="qsn-startup-") as tmp_name:
        tmp = Path(tmp_name)
        warm = {}
        if "warm" in args.states:
            for c in args.commands:
                warm[c] = tmp / f"warm-{c}"
                _run(c, warm[c], "cold", tmp)  # priming run, not timed
        for r in range(args.repeats):
            for c in args.commands:
                for state in args.states:
                    xdg = warm[c] if state == "warm" else tmp / f"{state}-{c}-{r}"
                    row = {"repeat": r, **_run(c, xdg, state, tmp)}
                    if state != "warm":
                        shutil.rmtree(xdg, ignore_errors=True)
                    rows.append(row)
                    print(f"  {c:<9}{state:<5} repeat {r}: {row['wall_s']:.2f} s", file=sys.stderr)
    metadata["load_average_end"] = os.getloadavg()

    summary = []
    for c in args.commands:
        for state in args.states:
            runs = [row for row in rows if row["command"] == c and row["state"] == state]
            walls = [row["wall_s"] for row in runs]
            entry = {"command": c, "state": state, "wall_s_min": min(walls), "wall_s_median": statistics.median(walls)}
            entry["cache_entries_after"] = runs[-1]["cache_entries_after"]
            for key in runs[0].keys() - {"repeat", "command", "state", "wall_s", "cache_entries_after"}:
                entry[f"{key} median"] = statistics.median(row[key] for row in runs)
            summary.append(entry)
    path = bench_population.write_results(args.out, "startup", device, metadata, rows, summary=summary)

    print("\n| command | cache | wall min (s) | wall median (s) | entries | reported phases (median, s) |")
    print("|---|---|---|---|---|---|")
    for e in summary:
        phases = ", ".join(f"{k.removesuffix(' median')} {v:.2f}" for k, v in sorted(e.items()) if k.endswith(" median"))
        flag = " (over target)" if e["state"] == "warm" and e["command"] != "help" and e["wall_s_min"] > TARGET_WARM_S else ""
        print(f"| {e['command']} | {e['state']} | {e['wall_s_min']:.2f}{flag} | {e['wall_s_median']:.2f} | {e['cache_entries_after']} | {phases} |")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
