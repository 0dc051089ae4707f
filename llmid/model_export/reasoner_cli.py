"""`llmid train reasoner`: registered on the main CLI by `add_parser`; torch is imported only when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmid.errors import ConfigError
from llmid.model_export.cli_support import recorded_command, require_torch, subcommands
from llmid.ui import make_say


def add_parser(sub: Any) -> None:
    train = subcommands(sub, "train", "train a model (needs the [train] extra: torch)",
                        "Train the learned models from the repository's data and export them to ONNX with a model "
                        "card.")
    p = train.add_parser(
        "reasoner", help="train the event-graph root-cause reasoner and export models/reasoner.onnx",
        description="Generate simulator scenarios (training phrasings only), featurise them with the engine, add "
                    "the earlier HDFS sessions and BGL windows, train the event-graph reasoner (torch, CPU) and "
                    "export it to ONNX with its model card. Deterministic for a given --seed.")
    p.add_argument("--out", metavar="ONNX", help="output model (default: llmid/models/reasoner.onnx)")
    p.add_argument("--scenarios", type=int, help="simulator training scenarios (default 600)")
    p.add_argument("--epochs", type=int, help="training epochs (default 10)")
    p.add_argument("--rounds", type=int, help="rounds of message passing R (default 3)")
    p.add_argument("--no-embeddings", action="store_true", help="ablation: no language-model template embeddings")
    p.add_argument("--no-real-data", action="store_true", help="simulator only (no HDFS / BGL sessions)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--tiny", action="store_true", help="a tiny configuration that trains in seconds (tests)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_torch()
    from llmid.model_export.reasoner_train import TrainConfig
    from llmid.model_export.reasoner_train import run as train_run

    cfg = TrainConfig.tiny() if args.tiny else TrainConfig()
    if args.scenarios is not None:
        cfg.scenarios = max(1, args.scenarios)
    if args.epochs is not None:
        cfg.epochs = max(1, args.epochs)
    if args.rounds is not None:
        if args.rounds < 1:
            raise ConfigError("--rounds must be at least 1.")
        cfg.model.rounds = args.rounds
    if args.no_embeddings:
        cfg.model.use_embeddings = False
    if args.no_real_data:
        cfg.hdfs = cfg.bgl = False
    cfg.seed = args.seed
    cfg.threads = args.threads
    card = train_run(cfg, Path(args.out) if args.out else None, command=recorded_command("llmid train reasoner"),
                     log=make_say(args.quiet))
    print(f"{card['file']}: {card['bytes']} bytes, validation {card['metrics']['validation_best']}")
    return 0
