"""`llmid train planner`: registered on the main CLI by `add_parser`; torch is imported only when it runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llmid.model_export.cli_support import recorded_command, require_torch, subcommands
from llmid.ui import make_say


def add_parser(sub: Any) -> None:

    train = subcommands(sub, "train", "train a model (needs the [train] extra: torch)",
                        "Train the learned models from the repository's data and export them to ONNX with a model "
                        "card.")
    p = train.add_parser(
        "planner", help="train the actor-critic recovery planner and export models/planner.onnx",
        description="Run simulator scenarios (training phrasings, seeds 0..N-1) through the pipeline, try every "
                    "candidate action in the recovery environment, train the actor-critic with Beta-confidence "
                    "shaping and the joint loss (fault classification, causal contrast, A2C, KL), export it to "
                    "ONNX with its model card and check ONNX Runtime against torch. Deterministic for a --seed.")
    p.add_argument("--out", metavar="ONNX", help="output model (default: llmid/models/planner.onnx)")
    p.add_argument("--scenarios", type=int, help="training scenarios (default 700)")
    p.add_argument("--epochs", type=int, help="training epochs (default 60)")
    p.add_argument("--no-shaping", action="store_true", help="ablation: the policy without Beta shaping (κ = 0)")
    p.add_argument("--cache", metavar="NPZ", help="cache the featurised scenarios here (reused when the seeds match)")
    p.add_argument("--phrasings", choices=("train", "fit"), default="train",
                   help="wording of the training scenarios: train (default), or fit = train without the 'dev' "
                        "wording that `llmid eval planner --validation` scores on (for choosing settings)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--ensemble", type=int, help="train this many members (seeds SEED, SEED+1, ...) and export "
                                                "their average (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--tiny", action="store_true", help="a tiny configuration that trains in seconds (tests)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_torch()
    from llmid.model_export.planner_train import TrainConfig
    from llmid.model_export.planner_train import run as train_run

    cfg = TrainConfig.tiny() if args.tiny else TrainConfig()
    if args.scenarios is not None:
        cfg.scenarios = max(1, args.scenarios)
    if args.epochs is not None:
        cfg.epochs = max(1, args.epochs)
    if args.ensemble is not None:
        cfg.ensemble = max(1, args.ensemble)
    if args.no_shaping:
        cfg.model.kappa = 0.0
    cfg.seed, cfg.threads, cfg.cache, cfg.phrasings = args.seed, args.threads, args.cache, args.phrasings
    res = train_run(cfg, Path(args.out) if args.out else None, command=recorded_command("llmid train planner"),
                    log=make_say(args.quiet))
    print(json.dumps(res))
    return 0
