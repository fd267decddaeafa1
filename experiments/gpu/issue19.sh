#!/usr/bin/env bash
# Issue 19's GPU checks, prepared to run once on a lent GPU (never run yet; the timeouts below sum to 10 min):
#   (a) a HunyuanVideo-architecture block stack at 720p × 129 frames (118,800 video tokens), whole and
#       as one rank of a 4-way split: activation memory and time per block pair, forward and backward;
#   (b) one SemE and one DetE step at Wan2.1-1.3B size (480p × 81), before and after each throughput
#       option (fused AdamW, torch.compile per block, SDPA's flash kernel): step time, peak memory, MFU,
#       the share of each part.
#   bash experiments/gpu/issue19.sh [OUT]      (OUT: default experiments/gpu/issue19)
set -u
OUT=${1:-experiments/gpu/issue19}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/device.csv" 2>&1
python -c "import torch, diffusers; print(torch.__version__, diffusers.__version__)" > "$OUT/versions.txt"
timeout 150 python -m experiments.gpu.hunyuan_blocks --out "$OUT/hunyuan_blocks.json"
timeout 100 python -m experiments.gpu.hunyuan_blocks --split 4 --out "$OUT/hunyuan_blocks_split4.json"
timeout 200 python -m experiments.gpu.step_breakdown --stages seme --out "$OUT/step_breakdown_seme.json"
timeout 150 python -m experiments.gpu.step_breakdown --stages dete --variants baseline all \
  --out "$OUT/step_breakdown_dete.json"
