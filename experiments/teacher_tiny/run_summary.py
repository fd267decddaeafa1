"""Summarize a teacher training run from its TensorBoard events: steps, active wall time, final loss, val.

    python -m experiments.teacher_tiny.run_summary [--last-step N] EVENT_DIR [EVENT_DIR ...]

Several folders (a run and its resumed continuations, in order) are read as one run. Wall time is the
sum of the intervals between consecutive logged losses, leaving out gaps longer than two minutes
(a paused or killed-and-resumed process), so it counts only time spent training.
"""

from __future__ import annotations

import json
import sys
from statistics import mean

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

MAX_GAP_SECONDS = 120.0


def summarize(event_dirs: list[str], last_step: int | None = None, tail_steps: int = 250) -> dict:
    """``last_step`` cuts the run where the next stage took its checkpoint (later events are ignored)."""
    loss, val = [], {}
    for event_dir in event_dirs:
        events = EventAccumulator(event_dir)
        events.Reload()
        keep = lambda e: last_step is None or e.step < last_step  # noqa: E731 (step s is logged after s + 1 updates)
        loss += [e for e in events.Scalars("train/loss") if keep(e)]
        for tag in events.Tags()["scalars"]:
            if tag.startswith("val/"):
                val.setdefault(tag, []).extend((e.step, round(e.value, 3)) for e in events.Scalars(tag) if keep(e))
    loss.sort(key=lambda e: e.wall_time)
    gaps = [b.wall_time - a.wall_time for a, b in zip(loss, loss[1:], strict=False)]
    last_logged = loss[-1].step
    summary = {
        "event_dirs": event_dirs,
        "last_logged_step": last_logged,
        "active_wall_time_minutes": round(sum(g for g in gaps if g <= MAX_GAP_SECONDS) / 60, 1),
        "left_out_gaps_minutes": [round(g / 60, 1) for g in gaps if g > MAX_GAP_SECONDS],
        f"mean_train_loss_last_{tail_steps}_steps": round(
            mean(e.value for e in loss if e.step > last_logged - tail_steps), 4
        ),
    }
    summary.update({tag: sorted(set(points)) for tag, points in sorted(val.items())})
    return summary


if __name__ == "__main__":
    arguments = sys.argv[1:]
    cut = None
    if arguments[:1] == ["--last-step"]:
        cut, arguments = int(arguments[1]), arguments[2:]
    print(json.dumps(summarize(arguments, cut), indent=1))
