"""Stress validation set for the recovery planner: the validation scenarios through the *baseline* reasoner.

`llmid eval planner --validation` scores the planner on seeds 500,000+ with the "dev" wording, whose incidents come
from the shipped learned reasoner; that reasoner was trained on the whole training wording (dev included), so its
rankings there are nearly perfect and a planner fitted on "fit" reaches the ceiling (nothing to choose between).
The same scenarios through the keyword-free baseline reasoner give poorly ranked incidents, as on logs the
reasoner does not know: a harder, still test-free set for choosing how the planner re-plans and what the gate
holds. Writes DIR/dev-N.npz (+ DIR/incidents/), which `llmid eval planner --validation --cache DIR` then reads:

    python benchmarks/planner_stress_validation.py /tmp/p5/devb 300
    llmid eval planner --validation --scenarios 300 --model MODEL --cache /tmp/p5/devb
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from llmid.config import Settings
from llmid.engine.embeddings import default_embedder
from llmid.evaluation.planner_data import build_arrays, build_case, seeds_for


def main(out: str, n: int = 300) -> None:
    t0 = time.time()
    folder = Path(out)
    embedder, settings = default_embedder(), Settings(reasoner="baseline")
    cases = []
    for k, seed in enumerate(seeds_for("dev", n)):
        cases.append(build_case(seed, "dev", settings=settings, embedder=embedder, raw_cache=folder / "incidents"))
        if (k + 1) % 50 == 0:
            print(f"{k + 1}/{n} scenarios, {time.time() - t0:.0f} s", file=sys.stderr)
    np.savez_compressed(folder / f"dev-{n}.npz", **build_arrays(cases))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
