"""Root cause on logs that start only minutes before their fault: the learned reasoner with and without judging
windows while its normal profile is still warming up (`GraphStream.warming`, `LearnedReasoner.WARMUP_THRESHOLD`).

    .venv/bin/python benchmarks/rca_short_normal.py [--scenarios 50] [--minutes 5 10 30]

Held-out simulator seeds (1,000,000 + k) and phrasings ("test"), each scenario regenerated with the given
minutes of normal traffic before the fault. Per setting: scenarios whose fault raised an incident holding the
root-cause line (detected), AC@1 / AC@3 of that incident's ranking, and incidents that closed before the fault
began (false alarms).
"""

from __future__ import annotations

import argparse
import math

from llmid.config import Settings
from llmid.engine.reasoner_learned import LearnedReasoner
from llmid.evaluation.rca import run_pipeline
from llmid.evaluation.rca_data import HELDOUT_SEED_BASE, sim_case


def score(minutes: float, n: int, warmup: bool) -> dict[str, float]:
    settings = Settings()
    det = ac1 = ac3 = fa = 0
    for k in range(n):
        case = sim_case(HELDOUT_SEED_BASE + k, "test", normal_minutes=minutes)
        reasoner = LearnedReasoner(settings)
        if not warmup:
            reasoner.WARMUP_THRESHOLD = math.inf  # never flag while warming: the behaviour before the change
        incidents = run_pipeline(case.fresh_records(), settings, reasoner)
        root = case.truth["root_cause_line"]
        hit = [i for i in incidents if i.first_line <= root <= i.last_line]
        fa += sum(1 for i in incidents if i.last_line < root)
        if hit:
            det += 1
            lines = [e.lines for e in hit[0].ranking]
            ac1 += any(root in ls for ls in lines[:1])
            ac3 += any(root in ls for ls in lines[:3])
    return {"detected": det / n, "AC@1": ac1 / n, "AC@3": ac3 / n, "false alarms / scenario": fa / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", type=int, default=50)
    ap.add_argument("--minutes", type=float, nargs="+", default=[5.0, 10.0, 30.0])
    args = ap.parse_args()
    print("| normal minutes | warm-up judging | detected | AC@1 | AC@3 | false alarms / scenario |")
    print("|---|---|---|---|---|---|")
    for m in args.minutes:
        for warm in (False, True):
            r = score(m, args.scenarios, warm)
            print(f"| {m:g} | {'on' if warm else 'off'} | {r['detected']:.3f} | {r['AC@1']:.3f} | {r['AC@3']:.3f} | "
                  f"{r['false alarms / scenario']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
