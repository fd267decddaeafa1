"""Evaluation: MiniBench on the tiny tier (``MiniBenchModule``, run by ``validate``), oracle
accuracies, latency, and VBench's prompt lists and aggregation for the real tier."""

from dcm_lightning.evaluation.bench_module import EvaluatedModel, MiniBenchModule, run_minibench

__all__ = ["EvaluatedModel", "MiniBenchModule", "run_minibench"]
