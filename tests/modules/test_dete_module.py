"""DetE chained from a SemE checkpoint through the real CLI, on a random "test"-size teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcm_lightning.cli import main
from dcm_lightning.data.trajectory_datamodule import CachedPairs, TrajectoryDataModule
from dcm_lightning.errors import UserError
from dcm_lightning.evaluation import EvaluatedModel
from dcm_lightning.modules import DetEModule
from dcm_lightning.modules.dete_settings import AdversarialSpec, DetailExpertSpec
from dcm_lightning.randomness import step_generator
from tests.conftest import dete_config
from tests.modules.test_consistency_modules import logged

REPO = Path(__file__).resolve().parents[2]


LORA_4 = DetailExpertSpec(lora_rank=4, lora_alpha=8.0)


def _inputs(module):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *module.teacher.latent_shape(), generator=generator)
    condition = module.teacher.encode_prompts(["a plain red circle moving up"] * 2)
    return x, torch.tensor([950.0, 900.0]), condition.embeds, condition.mask


def test_dete_logs_every_gan_term_and_leaves_the_semantic_expert_bit_identical(chained):
    tmp_path, semantic = chained
    for metric in ("train/huber", "train/adversarial", "train/feature_matching", "train/d_loss", "train/d_accuracy"):
        assert len(logged(tmp_path / "dete", metric)) == 2, metric
    trained = DetEModule.load_from_checkpoint(
        next((tmp_path / "dete" / "checkpoints").glob("*step=4.ckpt")), weights_only=True
    )
    fresh = DetEModule(semantic_checkpoint=str(semantic), detail=LORA_4)
    inputs = _inputs(trained)
    assert torch.equal(trained.student.network(*inputs, expert="semantic"), fresh.student.network.semantic(*inputs))
    assert not torch.equal(
        trained.student.network(*inputs, expert="detail"), fresh.student.network(*inputs, expert="detail")
    )


def test_one_dete_step_runs_the_teacher_once_on_fake_and_once_on_real(chained, tmp_path):
    root, semantic = chained
    module = DetEModule(semantic_checkpoint=str(semantic), detail=LORA_4)
    data = TrajectoryDataModule(cache_dir=str(root / "cache"), num_trajectories=8, samples_per_shard=4)
    pairs = CachedPairs(data.prepare_cache(module), module.training_indices(), seed=0)
    batch = {k: torch.stack([torch.as_tensor(pairs[i][k]) for i in range(2)]) for k in pairs[0]}
    calls = []
    module.teacher.network.register_forward_hook(lambda m, args, out: calls.append(torch.is_grad_enabled()))
    trainer_stub = _manual_optimization_harness(module)
    trainer_stub(batch)
    assert calls == [True, False], "fake features with gradient, real features without, nothing else"


def test_without_gan_weights_a_dete_step_is_consistency_only(chained):
    """The ablation's rows without GAN/FM: no teacher feature pass, the discriminator untouched,
    the detail expert still trained."""
    root, semantic = chained
    module = DetEModule(
        semantic_checkpoint=str(semantic),
        detail=LORA_4,
        adversarial=AdversarialSpec(weight=0.0, feature_matching_weight=0.0),
    )
    data = TrajectoryDataModule(cache_dir=str(root / "cache"), num_trajectories=8, samples_per_shard=4)
    pairs = CachedPairs(data.prepare_cache(module), module.training_indices(), seed=0)
    batch = {k: torch.stack([torch.as_tensor(pairs[i][k]) for i in range(2)]) for k in pairs[0]}
    calls = []
    module.teacher.network.register_forward_hook(lambda m, args, out: calls.append(True))
    discriminator = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    detail = {k: v.clone() for k, v in module.student.network.trainable_state_dict().items()}
    _manual_optimization_harness(module)(batch)
    assert calls == [] and not module.adversarial.enabled
    assert all(torch.equal(v, module.discriminator.state_dict()[k]) for k, v in discriminator.items())
    after = module.student.network.trainable_state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in detail.items())


def test_psi_modules_choose_what_the_detail_expert_copies(chained):
    """Ψ is the teacher adapter's unless the config names other modules; only those are copied and
    trained next to the adapters."""
    _, semantic = chained
    default = DetEModule(semantic_checkpoint=str(semantic), detail=LORA_4)
    chosen = DetEModule(
        semantic_checkpoint=str(semantic), detail=DetailExpertSpec(lora_rank=4, psi_modules=["time_embedder"])
    )
    assert default.student.network.settings["psi"] == list(default.teacher.psi_modules)
    assert chosen.student.network.settings["psi"] == ["time_embedder"]
    copied = {name.split(".")[1] for name in chosen.student.network.trainable_names() if name.startswith("psi.")}
    assert copied == {"time_embedder"}
    adapters_only = DetEModule(semantic_checkpoint=str(semantic), detail=DetailExpertSpec(lora_rank=4, psi_modules=[]))
    assert all("lora_" in name for name in adapters_only.student.network.trainable_names())
    with pytest.raises(UserError, match="neither modules nor parameters"):
        DetEModule(semantic_checkpoint=str(semantic), detail=DetailExpertSpec(psi_modules=["no_such_layer"]))


def test_the_ema_student_can_be_the_discriminators_real(chained):
    root, semantic = chained
    with pytest.raises(UserError, match="needs target_network: ema"):
        DetEModule(semantic_checkpoint=str(semantic), adversarial=AdversarialSpec(real_source="ema"))
    module = DetEModule(
        semantic_checkpoint=str(semantic),
        detail=LORA_4,
        adversarial=AdversarialSpec(real_source="ema"),
        target_network="ema",
    )
    data = TrajectoryDataModule(cache_dir=str(root / "cache"), num_trajectories=8, samples_per_shard=4)
    pairs = CachedPairs(data.prepare_cache(module), module.training_indices(), seed=0)
    batch = {k: torch.stack([torch.as_tensor(pairs[i][k]) for i in range(2)]) for k in pairs[0]}
    before = [p.clone() for p in module.target_ema.average.network.trainable_parameters()]
    _manual_optimization_harness(module)(batch)
    after = module.target_ema.average.network.trainable_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)), "the EMA student follows"


def test_the_teachers_own_trajectory_end_can_be_the_discriminators_real(chained):
    root, semantic = chained
    module = DetEModule(
        semantic_checkpoint=str(semantic), detail=LORA_4, adversarial=AdversarialSpec(real_source="teacher")
    )
    assert module.needs_clean_sample
    data = TrajectoryDataModule(cache_dir=str(root / "cache"), num_trajectories=8, samples_per_shard=4)
    cache = data.prepare_cache(module)
    pairs = CachedPairs(cache, module.training_indices(), seed=0, with_clean=True)
    batch = {k: torch.stack([torch.as_tensor(pairs[i][k]) for i in range(2)]) for k in pairs[0]}
    for i in range(2):  # the end state σ = 0 of the cached trajectory the pair was read from
        sample = pairs.order.sample(i)
        torch.testing.assert_close(batch["x_clean"][i], cache.read_sample(sample, [-1])["states"][0])
    step = module.consistency_step(batch)
    fake, real, sigma_adv = module.adversarial_inputs(step, batch)
    s = sigma_adv.view(-1, 1, 1, 1, 1)
    eps = (fake - (1 - s) * step.student_end) / s  # the detail phase ends at σ = 0: plain forward noising
    torch.testing.assert_close(real, (1 - s) * batch["x_clean"] + s * eps, rtol=1e-4, atol=1e-4)
    _manual_optimization_harness(module)(batch)


def test_each_rank_draws_its_own_adversarial_noise_and_rank_zero_the_one_process_draw(chained, monkeypatch):
    """σ_adv and the re-noise ε are drawn per data-parallel rank (the official code seeds per rank);
    rank 0's draw is the single-process one, so the tiny tier's runs are unchanged."""
    root, semantic = chained
    module = DetEModule(semantic_checkpoint=str(semantic), detail=LORA_4)
    data = TrajectoryDataModule(cache_dir=str(root / "cache"), num_trajectories=8, samples_per_shard=4)
    pairs = CachedPairs(data.prepare_cache(module), module.training_indices(), seed=0)
    batch = {k: torch.stack([torch.as_tensor(pairs[i][k]) for i in range(2)]) for k in pairs[0]}
    step = module.consistency_step(batch)
    draws = {}
    for rank in (0, 1, 0):
        monkeypatch.setattr(DetEModule, "global_rank", property(lambda self, rank=rank: rank))
        fake, _, sigma_adv = module.adversarial_inputs(step, batch)
        assert rank not in draws or torch.equal(draws[rank][0], fake)  # a rank's draw is reproducible
        draws[rank] = (fake, sigma_adv)
    assert not torch.equal(draws[0][0], draws[1][0])  # other ε (and, here, other σ_adv) on rank 1
    generator = step_generator(module._seed, module.global_step)  # the one-process stream: (seed, step)
    below = torch.tensor(module.segment.sample_indices()) - 1  # official: one grid level below, σ_{−1} = 0
    drawn = below[torch.randint(len(below), (2,), generator=generator)]
    torch.testing.assert_close(draws[0][1], torch.maximum(module.sigma(drawn), step.sigma_end))


def test_sigma_adv_is_drawn_one_grid_level_below_the_detail_range_as_the_official_code_draws_it(chained):
    _, semantic = chained
    levels = {}
    for choice in ("below", "detail_range"):
        module = DetEModule(
            semantic_checkpoint=str(semantic), detail=LORA_4, adversarial=AdversarialSpec(noise_levels=choice)
        )
        levels[choice] = set(module.adversarial_noise((256, 1))[0].tolist())  # 256 draws: every level
    detail = set(module.segment.sample_indices())  # grid points 0..κ
    assert levels["detail_range"] == detail
    assert levels["below"] == {i - 1 for i in detail}  # σ_{−1} = 0 … σ_{κ−1}


def _manual_optimization_harness(module):
    """Run ``training_step`` outside a Trainer: optimizers and the Lightning hooks it calls."""
    optimizers = module.configure_optimizers()
    module.optimizers = lambda: optimizers
    module.toggle_optimizer = module.untoggle_optimizer = lambda optimizer: None
    module.manual_backward = lambda loss: loss.backward()
    module.clip_gradients = lambda optimizer, gradient_clip_val, gradient_clip_algorithm: None
    module.log = module.log_dict = lambda *args, **kwargs: None
    return lambda batch: module.training_step(batch, 0)


def test_a_checkpoint_that_is_not_a_semantic_expert_is_refused(chained, tmp_path):
    root, _ = chained
    detail = next((root / "dete" / "checkpoints").glob("*step=4.ckpt"))
    with pytest.raises(UserError, match="is not a SemEModule checkpoint"):
        DetEModule(semantic_checkpoint=str(detail))
    with pytest.raises(UserError, match="does not exist"):
        DetEModule(semantic_checkpoint=str(tmp_path / "missing.ckpt"))


def test_sample_runs_the_dual_expert_student_from_its_checkpoint(chained, tmp_path):
    root, _ = chained
    checkpoint = next((root / "dete" / "checkpoints").glob("*step=4.ckpt"))
    main(
        ["sample", "--checkpoint", str(checkpoint), "--prompt", "a plain red circle moving up", "--out", str(tmp_path)]
    )
    assert '"steps": 4' in (tmp_path / "samples.json").read_text()


def test_the_full_parameter_detail_expert_trains_too(chained, tmp_path):
    root, semantic = chained
    config = dete_config(root, "dete_full", semantic, 2, detail={"mode": "full"})
    main(["fit", "--config", str(config)])
    assert len(logged(root / "dete_full", "train/d_loss")) == 1


def test_an_exported_dcm_student_reproduces_the_training_time_sampler(chained, tmp_path):
    from dcm_lightning.generation import load_sampler
    from dcm_lightning.sampling import seeded_noise

    root, _ = chained
    checkpoint = next((root / "dete" / "checkpoints").glob("*step=4.ckpt"))
    main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "student")])
    assert not any(path.suffix == ".yaml" for path in (tmp_path / "student").iterdir())
    videos = []
    for source in (checkpoint, tmp_path / "student"):
        for steps in (4, 6):  # 2 + 2 and 3 + 3 on the 10-step test grid
            sampler = load_sampler(source, steps)
            noise = seeded_noise([3, 4], sampler.model.latent_shape())
            condition = sampler.model.encode_prompts(
                ["a plain red circle moving up", "a striped cyan square moving left"]
            )
            videos.append(sampler.latents(noise, condition))
    torch.testing.assert_close(videos[2], videos[0], rtol=0, atol=0)
    torch.testing.assert_close(videos[3], videos[1], rtol=0, atol=0)
    assert not torch.equal(videos[0], videos[1]), "4 and 6 steps are different schedules"


def test_minibench_puts_teacher_and_dcm_student_side_by_side(chained, tmp_path, capsys):
    import json

    root, _ = chained
    checkpoint = next((root / "dete" / "checkpoints").glob("*step=4.ckpt"))
    out = tmp_path / "minibench"
    main(
        ["minibench", "--model", f"teacher={root / 'teacher'}", "--model", f"dcm-4={checkpoint}:4"]
        + ["--num-prompts", "3", "--seeds-per-prompt", "1", "--latency-repeats", "1", "--out", str(out)]
    )
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert results["reference"] == "teacher" and results["suite"]["videos"] == 3
    assert rows["teacher"]["steps"] == 10 and rows["dcm-4"]["steps"] == 4 and rows["dcm-4"]["nfe_per_video"] == 4
    assert "| dcm-4 |" in (out / "results.md").read_text() and "| dcm-4 |" in capsys.readouterr().out


def test_minibench_model_specs():
    from dcm_lightning.tools.minibench import parse_model

    assert parse_model("teacher-50=shipped:50") == EvaluatedModel("teacher-50", None, 50)
    assert parse_model("x=runs/a:b/last.ckpt") == EvaluatedModel("x", "runs/a:b/last.ckpt", None)
    with pytest.raises(UserError, match="LABEL=PATH"):
        parse_model("no-label")
