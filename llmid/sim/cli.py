"""`llmid sim generate`: write simulated incident logs with their ground truth.

Kept out of llmid/cli.py so the simulator's options live next to it; the main CLI only calls `add_parser`.
It is also the demo input on a fresh machine, so the repository never needs third-party log files.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmid.sim.faults import FAULTS
from llmid.sim.scenario import DEFAULT_RATE, generate_many, write_many

_EPILOG = """\
layout:
  --count 1 (default): DIR/scenario.log and DIR/truth.json
  --count K > 1:       DIR/scenario-0001/{scenario.log,truth.json} ... and DIR/manifest.json
  scenario i uses seed N+i-1; the same seed always gives byte-identical files.

truth.json holds the fault type, the 1-based line of the root cause (root_cause_line), its service and
host, the first lines of the fault chain (chain_lines) and the correct recovery action and target.

fault types: """ + ", ".join(f"{name} ({f.action})" for name, f in sorted(FAULTS.items()))


def add_parser(subparsers: Any) -> None:
    """Register `sim generate` on the main CLI's subparsers."""
    sim = subparsers.add_parser("sim", help="fault-injection simulator of a cloud AI platform",
                                description="Simulate incidents on a cloud AI platform (mixed-format logs "
                                            "with ground truth).")
    sub = sim.add_subparsers(dest="sim_command", metavar="COMMAND")
    sub.required = True
    gen = sub.add_parser(
        "generate", help="write a simulated incident log and its truth.json",
        description="Write a log of normal traffic followed by one injected fault that spreads through the "
                    "platform's services, plus truth.json with the root cause, chain and correct action.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    gen.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    gen.add_argument("--count", type=int, default=1, metavar="K", help="number of scenarios (default 1)")
    gen.add_argument("--fault", choices=sorted(FAULTS), metavar="TYPE",
                     help="fault type to inject (default: drawn from the seed); see the list below")
    gen.add_argument("--normal-minutes", type=float, default=30.0, metavar="M",
                     help="minutes of healthy traffic before the fault (default 30)")
    gen.add_argument("--fault-minutes", type=float, default=10.0, metavar="M",
                     help="minutes the fault keeps spreading before the log ends (default 10)")
    size = gen.add_mutually_exclusive_group()
    size.add_argument("--rate", type=float, default=DEFAULT_RATE,
                      help=f"background lines per second (default {DEFAULT_RATE}: about 4-5k lines)")
    size.add_argument("--lines", type=int, metavar="N", help="aim at about N lines (overrides --rate)")
    gen.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write; bad values and unwritable directories are one sentence on stderr, exit 2."""
    if args.count < 1:
        print("error: --count must be at least 1.", file=sys.stderr)
        return 2
    if args.lines is not None and args.lines < 1:
        print("error: --lines must be at least 1.", file=sys.stderr)
        return 2
    try:
        scenarios = generate_many(args.seed, args.count, normal_minutes=args.normal_minutes,
                                  fault_type=args.fault, rate=args.rate, lines=args.lines,
                                  fault_minutes=args.fault_minutes)
    except ValueError as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return 2
    try:
        if len(scenarios) == 1:
            paths = [scenarios[0].write(args.out)]
        else:
            paths = write_many(scenarios, args.out)
    except OSError as exc:
        print(f"error: cannot write to {args.out}: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    for path, sc in zip(paths, scenarios, strict=True):
        t = sc.truth
        print(f"{path}: {t['lines']} lines, fault {t['fault_type']} at line {t['root_cause_line']} "
              f"({t['root_cause_service']}@{t['root_cause_host']}) -> {t['action']} {t['target']}")
    return 0
