"""Evaluation: MiniBench on the tiny tier (``MiniBenchModule``, run by ``validate``), oracle
accuracies, latency, and VBench subsets (``VBenchModule``, run by ``validate``: distributed
generation, VBench's own evaluator, its official aggregation)."""

from dcm_lightning.evaluation.bench_module import EvaluatedModel, MiniBenchModule, run_minibench
from dcm_lightning.evaluation.vbench_module import VBenchModule

__all__ = ["EvaluatedModel", "MiniBenchModule", "VBenchModule", "run_minibench"]
