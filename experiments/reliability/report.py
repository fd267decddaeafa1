"""`make reliability`'s table: experiments/reliability/results.jsonl (one row per test, written by
tests/reliability/test_faults.py and tests/test_bad_inputs.py when DCM_RELIABILITY_RESULTS names it)
→ experiments/reliability/results.md.

    python -m experiments.reliability.report
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    rows = [json.loads(line) for line in (HERE / "results.jsonl").read_text().splitlines() if line.strip()]
    faults = [r for r in rows if "fault" in r]
    inputs = [r for r in rows if "bad_input" in r]
    lines = [
        "# Reliability: faults injected into real runs",
        "",
        f"Written by `make reliability` (experiments/reliability/report.py) on {platform.node() or 'this machine'}: "
        f"{platform.processor() or platform.machine()}, CPU only. Each fault row is one real `python -m dcm_lightning "
        "fit` subprocess interrupted at the step given, resumed from `last.ckpt`, and compared with an uninterrupted "
        "run of the same config: the largest relative difference over every module weight and every optimizer state "
        "(0 = bit-identical; FSDP2 rows must stay ≤ 1e-7). `make reliability` writes this table only when "
        "every test passed.",
        "",
        "| stage | fault | at step | outcome | largest relative difference |",
        "|---|---|---:|---|---:|",
    ]
    for r in faults:
        difference = "—" if r["difference"] is None else f"{r['difference']:.3g}"
        lines.append(f"| {r['stage']} | {r['fault']} | {r['step']} | {r['outcome']} | {difference} |")
    refused = sum(r["refused_cleanly"] for r in inputs)
    lost = sum(r.get("lost", 0) for r in inputs)
    by_kind = Counter(r["kind"] for r in inputs)
    lines += [
        "",
        f"## Bad inputs: {refused} of {len(inputs)} refused cleanly",
        "",
        "Refused cleanly = exit status 2, one sentence on stderr naming the problem, nothing written half "
        f"(files changed or left behind: {lost}). By kind: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(by_kind.items()))
        + ".",
        "",
        "| input | kind | refused cleanly | message |",
        "|---|---|---|---|",
    ]
    for r in inputs:
        message = r["message"].replace("|", "\\|")
        lines.append(f"| {r['bad_input']} | {r['kind']} | {'yes' if r['refused_cleanly'] else 'NO'} | {message} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'results.md'}: {len(faults)} fault rows, {refused}/{len(inputs)} bad inputs refused cleanly")


if __name__ == "__main__":
    main()
