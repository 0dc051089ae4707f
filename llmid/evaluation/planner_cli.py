"""`llmid eval planner`: registered on the main CLI's `eval` group by `add_parser`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmid.errors import ConfigError, InputError
from llmid.ui import make_say

MODELS = Path(__file__).resolve().parents[1] / "models"


def add_parser(sub: Any) -> None:
    from llmid.model_export.cli_support import subcommands

    ev = subcommands(sub, "eval", "evaluate against labelled benchmark data", "Benchmarks against ground truth.")
    p = ev.add_parser(
        "planner", help="recovery success, harm before/after the safety gate and ECE on held-out simulator seeds",
        description="Evaluate the learned planner beside the policy without Beta shaping, the runbook baseline "
                    "(keyword rules) and random, on held-out simulator seeds with phrasings never used in "
                    "training: success@1, success within 3 steps, mean steps to recovery, harmful-action rate "
                    "before and after the safety gate, and the calibration error of the confidence, with a "
                    "reliability diagram (PNG).")
    p.add_argument("--scenarios", type=int, default=300, help="held-out scenarios (default 300)")
    p.add_argument("--model", help="learned planner ONNX (default: llmid/models/planner.onnx)")
    p.add_argument("--unshaped", metavar="ONNX",
                   help="the unshaped ablation; trained into this path (same budget, κ = 0) when missing")
    p.add_argument("--policy", metavar="FILE", help="safety policy for the gate (default: benchmarks/"
                                                     "planner-policy.toml when present, else the built-in one)")
    p.add_argument("--validation", action="store_true",
                   help="score on the validation scenarios instead (seeds 500,000+, the 'dev' wording: a share of "
                        "the training wording held out of `llmid train planner --phrasings fit`), for choosing "
                        "settings without looking at the held-out test")
    p.add_argument("--cache", metavar="DIR", help="cache the featurised held-out scenarios (and training ones)")
    p.add_argument("--png", metavar="PATH", help="write the reliability diagram here")
    p.add_argument("--update-card", action="store_true",
                   help="write the held-out metrics into the evaluated model's card (models/planner.json)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmid.engine.safety import SafetyPolicy
    from llmid.evaluation.planner_data import TRAIN_SCENARIOS, load_or_build
    from llmid.evaluation.planner_eval import (
        evaluate,
        format_markdown,
        model_steps,
        random_steps,
        reliability_png,
        runbook_steps,
    )

    if args.scenarios < 1:
        raise ConfigError("--scenarios must be at least 1.")
    model = Path(args.model) if args.model else MODELS / "planner.onnx"
    if not model.is_file():
        raise InputError(f"No planner model {model}; run `llmid train planner` first.")
    log = make_say(args.quiet)
    cache = Path(args.cache) if args.cache else None
    if args.unshaped and not Path(args.unshaped).is_file():
        log(f"training the unshaped ablation into {args.unshaped}")
        phrasings = "fit" if args.validation else "train"
        cmd = [sys.executable, "-m", "llmid", "train", "planner", "--no-shaping", "--out", args.unshaped, "-q",
               "--phrasings", phrasings]
        if cache:
            cmd += ["--cache", str(cache / f"{phrasings}-{TRAIN_SCENARIOS}.npz")]
        if subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL).returncode != 0:
            raise ConfigError("Training the unshaped planner failed.")
    policy_path = Path(args.policy) if args.policy else Path("benchmarks/planner-policy.toml")
    if args.policy and not policy_path.is_file():
        raise InputError(f"No safety policy {policy_path}.")
    policy = SafetyPolicy.load(policy_path) if policy_path.is_file() else SafetyPolicy()
    split, name = ("dev", "dev") if args.validation else ("test", "heldout")
    data = load_or_build(split, args.scenarios, cache / f"{name}-{args.scenarios}.npz" if cache else None, log=log)
    planners = {"learned": model_steps(model, data)}
    if args.unshaped:
        planners["unshaped"] = model_steps(args.unshaped, data)
    planners["runbook"] = runbook_steps(data)
    planners["random"] = random_steps(data)
    result = evaluate(data, planners, lambda: _copy(policy))
    result["split"] = "validation (dev wording)" if args.validation else "held-out (test wording)"
    result["policy"] = policy.source or "built-in"
    result["confidence_floor"] = policy.confidence_floor
    if args.png:
        result["png"] = str(reliability_png(result, args.png))
    card = model.with_suffix(".json")
    if args.update_card and card.is_file() and not args.validation:
        doc = json.loads(card.read_text(encoding="utf-8"))
        doc.setdefault("metrics", {})["heldout"] = {
            "command": "llmid " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else "llmid eval planner",
            "scenarios": result["scenarios"], "policy": result["policy"],
            **{name: {k: v for k, v in m.items() if k != "reliability"} for name, m in result["planners"].items()}}
        card.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        print(format_markdown(result))
    else:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


def _copy(policy: Any) -> Any:
    import copy

    return copy.deepcopy(policy)
