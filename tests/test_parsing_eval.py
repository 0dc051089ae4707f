"""Tests for the Loghub-2k parsing benchmark runner (llmid.evaluation.parsing_eval).

Everything is real: the raw logs go through the ingest reader, and drain3 and our miner parse them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llmid.evaluation.parsing_eval import (
    available_systems,
    format_comparison,
    format_table,
    gt_paths,
    run_parsing_eval,
)

DATA_DIR = os.environ.get("LLMID_LOGHUB2K_DIR", str(Path(__file__).resolve().parents[2] / "shared/data/loghub2k"))


def _require(*systems: str) -> None:
    for s in systems:
        if not os.path.isfile(gt_paths(DATA_DIR, s)[1]):
            pytest.skip(f"Loghub-2k {s} not present under {DATA_DIR}")


def test_gt_paths_variants() -> None:
    assert gt_paths("/d", "HDFS", "corrected") == (
        "/d/HDFS/HDFS_2k.log", "/d/HDFS/HDFS_2k.log_structured_corrected.csv")
    assert gt_paths("/d", "HDFS", "original")[1] == "/d/HDFS/HDFS_2k.log_structured.csv"
    assert gt_paths("/d", "HDFS", "loghub2") == (
        "/d/HDFS/loghub2.0_2k/HDFS_2k.log", "/d/HDFS/loghub2.0_2k/HDFS_2k.log_structured_corrected.csv")
    with pytest.raises(ValueError):
        gt_paths("/d", "HDFS", "bogus")


def test_available_systems_keeps_benchmark_order(tmp_path: Any) -> None:
    for s in ("Apache", "HDFS"):
        (tmp_path / s).mkdir()
        (tmp_path / s / f"{s}_2k.log_structured_corrected.csv").write_text("LineId,Content,EventTemplate\n")
    assert available_systems(str(tmp_path)) == ["HDFS", "Apache"]
    assert available_systems(str(tmp_path), gt="original") == []


def test_unknown_parser_or_gt() -> None:
    with pytest.raises(ValueError):
        run_parsing_eval(DATA_DIR, parser="nope")
    with pytest.raises(ValueError):
        run_parsing_eval(DATA_DIR, gt="nope", parser="drain3")


def test_drain3_runner_matches_baseline() -> None:
    pytest.importorskip("drain3")
    _require("HDFS", "Apache")
    seen: list[str] = []
    res = run_parsing_eval(DATA_DIR, systems=["Apache", "HDFS", "NoSuchSystem"], parser="drain3",
                           progress=lambda row: seen.append(row["system"]))
    assert [r["system"] for r in res["systems"]] == ["HDFS", "Apache"] == seen
    assert res["missing"] == ["NoSuchSystem"]
    assert (res["parser"], res["gt"]) == ("drain3", "corrected")
    hdfs, apache = res["systems"]
    assert tuple(round(hdfs[k], 3) for k in ("GA", "FGA", "PA", "FTA")) == (0.998, 0.839, 0.957, 0.645)
    assert tuple(round(apache[k], 3) for k in ("GA", "FGA", "PA", "FTA")) == (1.0, 1.0, 0.694, 0.5)
    assert hdfs["lines"] == 2000 and hdfs["templates_gt"] == 14 and hdfs["templates_pred"] == 17
    assert hdfs["seconds"] > 0 and hdfs["lines_per_s"] > 0
    assert res["mean"]["GA"] == pytest.approx((hdfs["GA"] + apache["GA"]) / 2)
    assert res["mean"]["lines"] == 4000
    assert hdfs["content_source"] != "gt_csv" and hdfs["content_mismatches"] == 0

    table = format_table(res)
    lines = table.splitlines()
    assert "parser=drain3" in lines[0]
    assert lines[1].split()[:6] == ["system", "lines", "GA", "FGA", "PA", "FTA"]
    assert any(line.startswith("HDFS") and "0.998  0.839  0.957  0.645" in line for line in lines)
    assert any(line.startswith("mean") for line in lines)
    assert "NoSuchSystem" in table
    both = format_comparison([res, res])
    assert "drain3:GA" in both and "mean" in both


def test_loghub2_variant_skips_systems_without_it() -> None:
    pytest.importorskip("drain3")
    _require("HDFS", "Windows")
    res = run_parsing_eval(DATA_DIR, systems=["HDFS", "Windows"], gt="loghub2", parser="drain3")
    assert [r["system"] for r in res["systems"]] == ["HDFS"]
    assert res["missing"] == ["Windows"]
    # drain3_baseline.md cross-check: config A on loghub-2.0's GT gives HDFS 0.998/0.839/0.500/0.323.
    hdfs = res["systems"][0]
    assert tuple(round(hdfs[k], 3) for k in ("GA", "FGA", "PA", "FTA")) == (0.998, 0.839, 0.5, 0.323)


def test_llmid_miner_on_hdfs_and_apache() -> None:
    """Our real miner on two small systems: sane accuracy ranges ."""
    _require("HDFS", "Apache")
    res = run_parsing_eval(DATA_DIR, systems=["HDFS", "Apache"], parser="llmid")
    rows = {r["system"]: r for r in res["systems"]}
    for r in rows.values():
        assert r["lines"] == 2000
        for k in ("GA", "FGA", "PA", "FTA"):
            assert 0.0 <= r[k] <= 1.0
        assert r["templates_pred"] >= 1
    assert rows["HDFS"]["GA"] > 0.8
    assert rows["Apache"]["GA"] > 0.8
    assert rows["HDFS"]["content_mismatches"] == 0
    assert rows["Apache"]["content_mismatches"] == 0
