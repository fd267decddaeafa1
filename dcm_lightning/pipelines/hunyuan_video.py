"""HunyuanVideoPipeline with a detail expert: ``transformer`` (the semantic expert) answers timesteps
t ≥ ``boundary_ratio`` · 1000, ``transformer_2`` (the detail expert) the lower ones, as in WanPipeline.
Without ``sigmas=``, a ``DCMFlowMatchEulerDiscreteScheduler`` gives the student's own σ list for
``num_inference_steps`` (HunyuanVideoPipeline would pass uniform ones)."""

from __future__ import annotations

from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel

from dcm_lightning.pipelines.schedulers import DCMFlowMatchEulerDiscreteScheduler
from dcm_lightning.pipelines.two_experts import experts_switched


class DCMHunyuanVideoPipeline(HunyuanVideoPipeline):
    """HunyuanVideoPipeline's components plus ``transformer_2`` and ``boundary_ratio`` (both optional:
    without them it is HunyuanVideoPipeline with the student's σ lists). Guidance is distilled into
    a student: ``guidance_scale`` is the embedded guidance (the teacher's ``embedded_guidance``)."""

    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->transformer_2->vae"
    _optional_components = ["transformer_2"]

    def __init__(
        self,
        text_encoder,
        tokenizer,
        transformer: HunyuanVideoTransformer3DModel,
        vae,
        scheduler,
        text_encoder_2,
        tokenizer_2,
        transformer_2: HunyuanVideoTransformer3DModel | None = None,
        boundary_ratio: float | None = None,
    ) -> None:
        super().__init__(text_encoder, tokenizer, transformer, vae, scheduler, text_encoder_2, tokenizer_2)
        self.register_modules(transformer_2=transformer_2)
        self.register_to_config(boundary_ratio=boundary_ratio)

    def __call__(self, *args, num_inference_steps: int = 50, sigmas: list[float] | None = None, **kwargs):
        if sigmas is None and isinstance(self.scheduler, DCMFlowMatchEulerDiscreteScheduler):
            sigmas = self.scheduler.sigmas_for(num_inference_steps)
        with experts_switched(self):
            return super().__call__(*args, num_inference_steps=num_inference_steps, sigmas=sigmas, **kwargs)
