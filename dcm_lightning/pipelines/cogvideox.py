"""CogVideoXPipeline with a detail expert: ``transformer`` (the semantic expert) answers timesteps
t ≥ ``boundary_ratio`` · num_train_timesteps, ``transformer_2`` (the detail expert) the lower ones,
as in WanPipeline. With a ``DCMCogVideoXDDIMScheduler`` it samples the student's own timesteps."""

from __future__ import annotations

from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

from dcm_lightning.pipelines.two_experts import experts_switched


class DCMCogVideoXPipeline(CogVideoXPipeline):
    """CogVideoXPipeline's components plus ``transformer_2`` and ``boundary_ratio`` (both optional:
    without them it is CogVideoXPipeline). Guidance is distilled into a student, so ``guidance_scale``
    defaults to 1 (no CFG)."""

    model_cpu_offload_seq = "text_encoder->transformer->transformer_2->vae"
    _optional_components = ["transformer_2"]

    def __init__(
        self,
        tokenizer,
        text_encoder,
        vae,
        transformer: CogVideoXTransformer3DModel,
        scheduler,
        transformer_2: CogVideoXTransformer3DModel | None = None,
        boundary_ratio: float | None = None,
    ) -> None:
        super().__init__(tokenizer, text_encoder, vae, transformer, scheduler)
        self.register_modules(transformer_2=transformer_2)
        self.register_to_config(boundary_ratio=boundary_ratio)

    def __call__(self, *args, guidance_scale: float = 1.0, **kwargs):
        with experts_switched(self):
            return super().__call__(*args, guidance_scale=guidance_scale, **kwargs)
