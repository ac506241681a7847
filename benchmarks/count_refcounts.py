"""Count Numba's reference-count operations during one simulator run (needs gdb).

    python benchmarks/count_refcounts.py --model mlp --p 0.01 --schedule time
    python benchmarks/count_refcounts.py --model recurrent

Runs this file under gdb: the inferior builds a benchmark model of ``ab_checkouts.py`` with
the ``eventsim`` of ``--checkout`` (default: this one), warms up, stops, and gdb puts counting
breakpoints on ``NRT_incref`` and ``NRT_decref`` (their addresses come from Numba's runtime
library) for exactly one ``run``.  Counts are exact and do not depend on machine load (the
run itself is slow under the breakpoints).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

GDB_SCRIPT = r'''
import gdb
gdb.execute("set pagination off")
gdb.execute("handle SIGTRAP stop nopass")
gdb.execute("run")
inc, dec = open(ADDR).read().split()
counters = [gdb.Breakpoint(f"*{a}") for a in (inc, dec)]
for b in counters:
    b.silent = True
    b.ignore_count = 10 ** 9
gdb.execute("continue")
print("REFCOUNTS", counters[0].hit_count, counters[1].hit_count)
gdb.execute("continue")
'''


def inferior(args) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(args.checkout))
    from numba.core.runtime import rtsys

    from ab_checkouts import simulator
    sim, x = simulator("eventsim", args)
    lib = rtsys.library
    Path(args.addr_file).write_text(f"{lib.get_pointer_to_function('NRT_incref')} "
                                    f"{lib.get_pointer_to_function('NRT_decref')}\n")
    os.kill(os.getpid(), signal.SIGTRAP)     # gdb sets the counters
    sim.run(x)
    os.kill(os.getpid(), signal.SIGTRAP)     # gdb reads them


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mlp",
                    choices=["mlp", "dense", "conv", "sparse", "recurrent"])
    ap.add_argument("--p", type=float, default=0.01, help="MLP input rate")
    ap.add_argument("--schedule", default="auto", choices=["auto", "time", "layer"])
    ap.add_argument("--checkout", type=Path, default=HERE.parent,
                    help="directory whose eventsim/ is counted (default: this checkout)")
    ap.add_argument("--inferior", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--addr-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inferior:
        inferior(args)
        return
    if shutil.which("gdb") is None:
        raise SystemExit("count_refcounts: gdb is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        addr = Path(tmp) / "addr"
        script = Path(tmp) / "count.py"
        script.write_text(GDB_SCRIPT.replace("ADDR", repr(str(addr))))
        cmd = ["gdb", "-q", "-batch", "-ex", f"source {script}", "--args", sys.executable,
               str(Path(__file__).resolve()), "--inferior", "--addr-file", str(addr),
               "--model", args.model, "--p", str(args.p), "--schedule", args.schedule,
               "--checkout", str(args.checkout)]
        out = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in out.stdout.splitlines() if l.startswith("REFCOUNTS")), None)
    if line is None:
        raise SystemExit(f"count_refcounts: gdb run failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    inc, dec = (int(v) for v in line.split()[1:])
    print(f"{args.model} (p={args.p}, schedule={args.schedule}): one run made {inc} increments "
          f"and {dec} decrements of Numba reference counts")


if __name__ == "__main__":
    main()
