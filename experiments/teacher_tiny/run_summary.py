"""Summarize a TeacherModule run from its TensorBoard events: steps, wall time, final loss, last val.

    python experiments/teacher_tiny/run_summary.py runs/teacher_tiny/tensorboard/version_0
"""

from __future__ import annotations

import json
import sys
from statistics import mean

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def summarize(event_dir: str, tail_steps: int = 250) -> dict:
    events = EventAccumulator(event_dir)
    events.Reload()
    loss = events.Scalars("train/loss")
    last_step = loss[-1].step
    summary = {
        "last_logged_step": last_step,
        "wall_time_minutes": round((loss[-1].wall_time - loss[0].wall_time) / 60, 1),
        f"mean_train_loss_last_{tail_steps}_steps": round(mean(e.value for e in loss if e.step > last_step - tail_steps), 4),
    }
    for tag in sorted(events.Tags()["scalars"]):
        if tag.startswith("val/"):
            summary[tag] = [(e.step, round(e.value, 3)) for e in events.Scalars(tag)]
    return summary


if __name__ == "__main__":
    print(json.dumps(summarize(sys.argv[1]), indent=1))
