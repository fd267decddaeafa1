# dcm_lightning — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TEACHER_STAGE2 := runs/teacher_tiny_stage2
TEACHER_OUT := dcm_lightning/teachers/weights/tiny_teacher

.DEFAULT_GOAL := help
.PHONY: help install test test-slow reliability lint demo teacher-tiny teacher-eval cache-tiny seme-tiny lcm-tiny pcm-tiny dete-tiny dete-full-tiny eval-tiny ablation-od-pe-tc compare sweep-baselines gap-tiny boundary-tiny kappa-tiny psi-tiny figures tensorboard clean

# the tiny tier's machine preset, laid under every tiny experiment file (configs/README.md)
TINY := --config configs/presets/tiny_cpu.yaml

# fit a tiny config, resuming its run when a last.ckpt exists: $(call distill,<config name>)
distill = $(PY) -m dcm_lightning fit $(TINY) --config configs/$(1).yaml \
	  $(if $(wildcard runs/$(1)/checkpoints/last.ckpt),--ckpt_path runs/$(1)/checkpoints/last.ckpt)

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps vbench==0.1.5  # VBench's prompt list only; its evaluators need more
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package editable with its dev extras
	@$(PY) -c "import dcm_lightning, torch; print('dcm_lightning', dcm_lightning.__version__, '| torch', torch.__version__)"

test: install ## run the test suite (minutes; excludes tests marked slow)
	$(PY) -m pytest -q -m "not slow"

test-slow: install ## run only the slow tests (but the fault-injection suite: `make reliability`)
	$(PY) -m pytest -q -m "slow and not reliability"

reliability: install ## kill/resume every stage, SIGTERM, SLURM requeue, torn writes, bad inputs -> experiments/reliability/results.md
	rm -f experiments/reliability/results.jsonl
	DCM_RELIABILITY_RESULTS=$(CURDIR)/experiments/reliability/results.jsonl $(PY) -m pytest -q -m reliability tests/reliability
	DCM_RELIABILITY_RESULTS=$(CURDIR)/experiments/reliability/results.jsonl $(PY) -m pytest -q tests/test_bad_inputs.py
	$(PY) -m experiments.reliability.report

lint: install ## ruff: lint and format check
	$(VENV)/bin/ruff check dcm_lightning tests experiments docs
	$(VENV)/bin/ruff format --check dcm_lightning tests experiments docs

demo: install ## the whole tiny pipeline (cache -> SemE -> DetE -> 4-step DCM), resuming; ~25 min from nothing
	$(PY) -m experiments.demo.run_demo

teacher-tiny: install ## retrain the shipped tiny teacher, both stages (resuming an interrupted run), then export it
	$(call distill,teacher_tiny)
	$(call distill,teacher_tiny_stage2)
	$(PY) -m dcm_lightning export --checkpoint $(TEACHER_STAGE2)/checkpoints/last.ckpt --out $(TEACHER_OUT)

teacher-eval: install ## MiniBench of the shipped teacher at 50 steps -> experiments/teacher_tiny/minibench/
	$(PY) -m dcm_lightning minibench --model teacher-50=shipped:50 --num-prompts 64 --seeds-per-prompt 2 \
	  --out experiments/teacher_tiny/minibench

cache-tiny: install ## build (or resume) the teacher-trajectory cache the *_tiny distillation configs share
	$(PY) -m dcm_lightning cache $(TINY) --config configs/seme_tiny.yaml

seme-tiny: install ## distill DCM's semantic expert from the shipped tiny teacher (builds the cache if missing)
	$(call distill,seme_tiny)

lcm-tiny: install ## baseline: LCM (one phase over the whole trajectory) from the same cache
	$(call distill,lcm_tiny)

pcm-tiny: install ## baseline: PCM (4 phases over the whole trajectory) from the same cache
	$(call distill,pcm_tiny)

dete-tiny: install ## DCM's detail expert (LoRA + Psi, GAN) on the semantic expert of `make seme-tiny`
	$(call distill,dete_tiny)

dete-full-tiny: install ## the ablation's +OD detail expert (a full-parameter second expert)
	$(call distill,dete_full_tiny)

eval-tiny: install ## MiniBench table of teacher-50, LCM-4, PCM-4, DCM-4, DCM-8 -> experiments/eval_tiny/
	$(PY) -m dcm_lightning validate $(TINY) --config configs/eval_tiny.yaml

ablation-od-pe-tc: install ## the paper's ablation (VCM, +OD, +OD+PE, +OD+PE+TC, DCM) x 3 seeds -> experiments/ablation_od_pe_tc/ (~75 min)
	$(PY) -m experiments.ablation_od_pe_tc.run_ablation

compare: install ## teacher-50 vs LCM-4, PCM-4, DCM-4, DCM-8 x 3 seeds -> experiments/compare/ (reuses the ablation's DCM runs)
	$(PY) -m experiments.compare.run_compare

sweep-baselines: install ## LCM's and PCM's learning rate (4 rates, seed 0) -> experiments/compare/sweep/
	$(PY) -m experiments.compare.run_sweep

gap-tiny: install ## where DCM-4's gap to teacher-50 lies: one change per row x 3 seeds -> experiments/gap/
	$(PY) -m experiments.gap.run_gap

boundary-tiny: install ## suggest κ from the tiny teacher's cached trajectories -> experiments/boundary/
	$(PY) -m dcm_lightning cache $(TINY) --config configs/seme_tiny.yaml
	$(PY) -m dcm_lightning analyze boundary --cache runs/cache/tiny_teacher --out experiments/boundary

kappa-tiny: install ## DCM at the κ `analyze boundary` suggests vs the default 37, x 3 seeds -> experiments/kappa/
	$(PY) -m experiments.kappa.run_kappa

psi-tiny: install ## which Ψ the LoRA detail expert needs (consistency only, and in DCM), x 3 seeds -> experiments/psi/
	$(PY) -m experiments.psi.run_psi

figures: install ## the README's picture: teacher-50 vs LCM-4, PCM-4, DCM-4 (after demo, lcm-tiny, pcm-tiny)
	$(PY) docs/figures/make_samples_figure.py

tensorboard: install ## serve the TensorBoard logs under runs/
	$(VENV)/bin/tensorboard --logdir runs

clean: ## remove caches (keeps .venv and runs/)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
