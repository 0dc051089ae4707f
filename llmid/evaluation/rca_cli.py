"""`llmid eval rca`: registered on the main CLI's `eval` group by `add_parser`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmid.errors import ConfigError, InputError

ABLATION_BUDGET = ["--scenarios", "240", "--epochs", "5"]
"""Every ablation model (R=3 included, for a like-for-like comparison) trains on this smaller budget than the
shipped model (600 scenarios, 10 epochs), so the five fit in about an hour on 2 cores."""
ABLATIONS: dict[str, list[str]] = {
    "R=1": ["--rounds", "1"],
    "R=2": ["--rounds", "2"],
    "R=3": ["--rounds", "3"],
    "R=5": ["--rounds", "5"],
    "R=3, no LM embeddings": ["--rounds", "3", "--no-embeddings"],
}
"""The paper's ablations: rounds of message passing, and the model without language-model embeddings."""


def add_parser(sub: Any) -> None:
    from llmid.model_export.cli_support import subcommands

    ev = subcommands(sub, "eval", "evaluate against labelled benchmark data", "Benchmarks against ground truth.")
    p = ev.add_parser(
        "rca", help="root-cause AC@1/AC@3 on held-out simulator scenarios; anomaly F1 on HDFS and BGL",
        description="Evaluate the learned reasoner beside the baselines (earliest anomalous event, most frequent "
                    "error template, PageRank on the event graph): AC@k on held-out simulator seeds with "
                    "phrasings never used in training (end to end and given the fault window), anomaly F1 on "
                    "HDFS sessions and BGL windows (chronological splits). --ablations trains (once, cached) "
                    "and evaluates R in {1,2,3,5} and the model without language-model embeddings.")
    p.add_argument("--scenarios", type=int, default=300, help="held-out simulator scenarios (default 300)")
    p.add_argument("--model", action="append", metavar="[NAME=]ONNX",
                   help="learned model(s) to evaluate (default: the shipped llmid/models/reasoner.onnx)")
    p.add_argument("--ablations", metavar="DIR", help="train the ablation models into DIR if missing, and add them")
    p.add_argument("--no-sim", action="store_true", help="skip the simulator benchmark")
    p.add_argument("--no-real", action="store_true", help="skip HDFS and BGL")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables instead of JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _models(args: argparse.Namespace) -> dict[str, str | None]:
    models: dict[str, str | None] = {}
    for spec in args.model or []:
        name, _, path = spec.rpartition("=")
        if not Path(path).is_file():
            raise InputError(f"No model file {path}.")
        models[name or Path(path).stem] = path
    if not models:
        models["learned"] = None
    if args.ablations:
        out = Path(args.ablations)
        out.mkdir(parents=True, exist_ok=True)
        for name, flags in ABLATIONS.items():
            slug = name.replace("=", "").replace(", ", "-").replace(" ", "-").lower()
            path = out / f"reasoner-{slug}.onnx"
            if not path.is_file():
                cmd = [sys.executable, "-m", "llmid", "train", "reasoner", "--out", str(path), *ABLATION_BUDGET,
                       *flags]
                if args.quiet:
                    cmd.append("-q")
                if subprocess.run(cmd, check=False).returncode != 0:
                    raise ConfigError(f"Training the ablation {name} failed.")
            models[f"ablation {name}"] = str(path)
    return models


def run(args: argparse.Namespace) -> int:
    from llmid.evaluation.rca import format_markdown, run_rca_eval

    if args.scenarios < 1:
        raise ConfigError("--scenarios must be at least 1.")
    models = _models(args)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    result = run_rca_eval(models, args.scenarios, sim=not args.no_sim, real=not args.no_real, log=log)
    if args.markdown:
        print(format_markdown(result))
    else:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0
