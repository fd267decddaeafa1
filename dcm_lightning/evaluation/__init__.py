"""Evaluation: oracle accuracies on MovingShapes (MiniBench grows from here), VBench later."""
