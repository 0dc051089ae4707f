"""Evaluation: measure how well LLM-ID does against public benchmarks, with the benchmarks' own metrics.

Why a package of its own: accuracy claims are only comparable with published numbers if the metric code
matches the published evaluators exactly, so it is kept separate from the engine and tested against a
reference (drain3 on Loghub-2k).

* :mod:`llmid.evaluation.parsing_metrics` -- GA, FGA, PA, PTA/RTA/FTA (Loghub-2.0 definitions) and the
  Khan et al. template-correction rules.
* :mod:`llmid.evaluation.parsing_eval` -- Loghub-2k runner (raw log -> ingestion -> miner -> metrics)
  and plain-text tables; ``benchmarks/parse_throughput.py`` measures lines/s against drain3.
"""
