"""`llmid train structurer`: train the structuring model on Loghub-2k ground truth, export it to ONNX, write
its model card. Also reachable without the `llmid` entry point: `python -m llmid.model_export train structurer`.

Needs the [train] extra (torch); the command says so in one sentence when torch is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from llmid.model_export.cli_support import require_torch, subcommands
from llmid.ui import make_say

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                           "structurer.onnx")


def add_parser(sub: Any) -> None:
    tsub = subcommands(sub, "train", "train a model (needs the [train] extra: torch)",
                       "Train the learned models from the repository's data and export them to ONNX with a model "
                       "card.")
    sp = tsub.add_parser(
        "structurer", help="train the log-structuring model and export llmid/models/structurer.onnx",
        description="Train the structuring encoder (char Bi-LSTM + multi-scale fuzzy-matching attention) on the "
                    "Loghub-2k ground truth under --data, export it to ONNX with a model card, and check "
                    "ONNX Runtime against torch. Deterministic for a seed; about 2 minutes on 2 CPU cores.")
    sp.add_argument("--data", default="../shared/data/loghub2k", help="folder of Loghub-2k system folders")
    sp.add_argument("--systems", nargs="*", metavar="NAME", help="train on these systems only (default: all present)")
    sp.add_argument("--exclude", nargs="*", metavar="NAME", default=[], help="leave these systems out")
    sp.add_argument("--out", default=DEFAULT_OUT, help="ONNX file to write (the card goes beside it, *.card.json)")
    sp.add_argument("--epochs", type=int, help="training epochs (default: the TrainConfig default)")
    sp.add_argument("--seed", type=int, default=13)
    sp.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    sp.add_argument("--tiny", action="store_true", help="a tiny model and 1 epoch on a few hundred lines (smoke test)")
    sp.add_argument("--ablation", choices=["mean-pool", "window-3"], help="train an ablated model instead")
    sp.add_argument("--json", action="store_true", help="print the model card as JSON")
    sp.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    sp.set_defaults(func=cmd_train_structurer)


def cmd_train_structurer(args: argparse.Namespace) -> int:
    from llmid.errors import InputError

    require_torch()
    from llmid.evaluation.parsing_eval import available_systems
    from llmid.model_export.structurer_data import load_examples
    from llmid.model_export.structurer_export import export_onnx, parity, write_card
    from llmid.model_export.structurer_model import ModelConfig, count_parameters
    from llmid.model_export.structurer_train import TrainConfig, data_fingerprint, train

    if not os.path.isdir(args.data):
        raise InputError(f"No data directory {args.data} (expected Loghub-2k system folders).")
    systems = [s for s in available_systems(args.data, "corrected", args.systems or None) if s not in args.exclude]
    if not systems:
        raise InputError(f"No Loghub-2k ground truth under {args.data} for the chosen systems.")
    mcfg = ModelConfig()
    if args.ablation == "mean-pool":
        mcfg.fam = False
    elif args.ablation == "window-3":
        mcfg.windows = (3,)
    cfg = TrainConfig(seed=args.seed, threads=args.threads, model=mcfg)
    if args.tiny:
        cfg = TrainConfig(seed=args.seed, threads=args.threads, epochs=1, per_template=2, max_examples=300,
                          model=ModelConfig(char_dim=8, char_hidden=8, token_hidden=8, window_dim=8, prototypes=4,
                                            context_dim=8, embed_dim=8, fam=mcfg.fam, windows=mcfg.windows))
    if args.epochs is not None:
        cfg.epochs = args.epochs
    say = make_say(args.quiet)
    say(f"training on {len(systems)} systems: {', '.join(systems)}")
    examples = load_examples(args.data, systems)
    start = time.perf_counter()
    model, stats = train(examples, cfg, say)
    seconds = time.perf_counter() - start
    out = export_onnx(model, args.out)
    check_lines = [ex.content for ex in examples[:: max(1, len(examples) // 500)]]
    par = parity(model, out, check_lines)
    card_path = os.path.splitext(str(out))[0] + ".card.json"
    command = "llmid train structurer " + " ".join(_argv_of(args))
    card = write_card(
        card_path,
        parameters=count_parameters(model),
        size_bytes=os.path.getsize(out),
        training={"data": os.path.abspath(args.data), "ground_truth": "Khan et al. corrected (Loghub-2k)",
                  "systems": systems, "data_fingerprint": data_fingerprint(args.data, systems),
                  "lines": stats["train_lines"], "templates": stats["templates"], "seconds": round(seconds, 1),
                  "threads": cfg.threads, "config": cfg.to_json(), "history": stats["history"]},
        command=command,
        parity=par,
        runtime=runtime_settings(),
        data_terms="Trained on Loghub-2k (logpai/loghub; research and academic use, see ../shared/data/loghub2k/"
                   "SOURCE.md); the data files are not shipped, the weights are derived from them.",
        metrics=_existing_metrics(card_path),
    )
    say(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB) and {card}; parity: max |diff| "
        f"{par['max_abs_diff']:.2e}, identical templates {par.get('identical_templates')}/{par.get('lines')}")
    if args.json:
        with open(card, encoding="utf-8") as fh:
            print(fh.read())
    return 0


def runtime_settings() -> dict[str, Any]:
    """How the engine uses the model (constants of llmid.engine.structurer), recorded in the card."""
    from llmid.engine import structurer as st

    return {"miner": "LearnedMiner: exact hash of generic masks -> template match -> model (batched)",
            "similarity": st.LEARNED_SIMILARITY, "gate": st.GATE, "vary": st.VARY,
            "add_threshold": st.ADD_THRESHOLD, "max_tokens": st.MAX_TOKENS, "max_chars": st.MAX_CHARS}


def _existing_metrics(card_path: str) -> dict[str, Any]:
    """Metrics a previous card held (e.g. the leave-one-out table), kept until the evaluation rewrites them."""
    try:
        with open(card_path, encoding="utf-8") as fh:
            return dict(json.load(fh).get("metrics") or {})
    except (OSError, ValueError):
        return {}


def _argv_of(args: argparse.Namespace) -> list[str]:
    out = [f"--data {args.data}"]
    if args.systems:
        out.append("--systems " + " ".join(args.systems))
    if args.exclude:
        out.append("--exclude " + " ".join(args.exclude))
    if args.epochs is not None:
        out.append(f"--epochs {args.epochs}")
    out.append(f"--seed {args.seed}")
    if args.tiny:
        out.append("--tiny")
    if args.ablation:
        out.append(f"--ablation {args.ablation}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmid.model_export")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_parser(sub)
    args = p.parse_args(argv)
    from llmid.errors import LlmidError

    try:
        return int(args.func(args))
    except LlmidError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
