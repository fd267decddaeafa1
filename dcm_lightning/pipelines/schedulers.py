"""diffusers schedulers that replay an exported student's own σ lists (docs/design.md §2 "Sampling").

A DCM student samples a handful of grid points that no stock scheduler spacing produces (2 + 2
steps at κ = 37: σ_49, σ_43 | σ_37, σ_18, then 0). Each scheduler here keeps, in its config, the
list of every step count the student was exported for and pins it in ``set_timesteps``:

- flow matching (HunyuanVideo, Wan2.1): ``DCMFlowMatchEulerDiscreteScheduler`` stores the σ lists
  themselves, the teacher's shift already applied (so ``shift`` is 1: no second shift); its Euler
  step x + (σ_next − σ)·v is the student's DDIM jump;
- VP v-prediction (CogVideoX): ``DCMCogVideoXDDIMScheduler`` stores model timesteps t (σ = t / 999)
  and jumps from each to the next stored one, then to clean data (ᾱ = 1), as the student does;
  CogVideoXDDIMScheduler's own step assumes uniform spacing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from diffusers import (
    CogVideoXDDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    SchedulerMixin,  # noqa: F401  (diffusers' loader looks up this name in a component's module)
)
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddim_cogvideox import DDIMSchedulerOutput


def _stored(lists: dict[str, list] | None, num_inference_steps: int | None, what: str) -> list:
    """The stored list of a step count, or one sentence naming the counts there are."""
    lists = lists or {}
    if str(num_inference_steps) not in lists:
        counts = ", ".join(sorted(lists, key=int)) or "none"
        raise ValueError(
            f"this scheduler holds the student's {what} for {counts} steps, not {num_inference_steps}; "
            "export the student with `--steps` naming the step counts wanted."
        )
    return lists[str(num_inference_steps)]


class DCMFlowMatchEulerDiscreteScheduler(FlowMatchEulerDiscreteScheduler):
    """FlowMatchEulerDiscreteScheduler whose ``set_timesteps(n)`` pins ``step_sigmas[str(n)]``.

    Args:
        step_sigmas: per step count, the student's σ list, descending and ending at 0 (n + 1 values,
            shift applied). The other settings are FlowMatchEulerDiscreteScheduler's; ``shift`` stays
            1, so explicit ``sigmas=`` are used as given too.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float | None = 0.5,
        max_shift: float | None = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        invert_sigmas: bool = False,
        shift_terminal: float | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        stochastic_sampling: bool = False,
        step_sigmas: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            shift=shift,
            use_dynamic_shifting=use_dynamic_shifting,
            base_shift=base_shift,
            max_shift=max_shift,
            base_image_seq_len=base_image_seq_len,
            max_image_seq_len=max_image_seq_len,
            invert_sigmas=invert_sigmas,
            shift_terminal=shift_terminal,
            use_karras_sigmas=use_karras_sigmas,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            time_shift_type=time_shift_type,
            stochastic_sampling=stochastic_sampling,
        )

    def sigmas_for(self, num_inference_steps: int) -> list[float]:
        """The n levels the model is called at for an n-step sample (the stored list without its 0)."""
        return _stored(self.config.step_sigmas, num_inference_steps, "σ lists")[:-1]

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
        mu: float | None = None,
        timesteps: list[float] | None = None,
    ) -> None:
        if sigmas is not None or timesteps is not None:  # explicit levels: FlowMatchEulerDiscreteScheduler's rule
            super().set_timesteps(num_inference_steps, device, sigmas, mu, timesteps)
            return
        levels = np.asarray(_stored(self.config.step_sigmas, num_inference_steps, "σ lists"), dtype=np.float32)
        self.num_inference_steps = num_inference_steps
        self.sigmas = torch.from_numpy(levels).to(device=device)
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps
        self._step_index = None
        self._begin_index = None


class DCMCogVideoXDDIMScheduler(CogVideoXDDIMScheduler):
    """CogVideoXDDIMScheduler (v-prediction) on given timesteps: ``set_timesteps(n)`` pins
    ``step_timesteps[str(n)]`` (or takes ``timesteps=``), and ``step`` jumps deterministically
    (η = 0) from each timestep to the next one given, from the last to clean data.

    Args:
        step_timesteps: per step count, the model timesteps the student is called at, descending.
            The other settings are CogVideoXDDIMScheduler's (the teacher's, so that ᾱ is its ᾱ).
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.0120,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "scaled_linear",
        trained_betas: np.ndarray | list[float] | None = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "leading",
        rescale_betas_zero_snr: bool = False,
        snr_shift_scale: float = 3.0,
        step_timesteps: dict[str, list[int]] | None = None,
    ) -> None:
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            clip_sample=clip_sample,
            set_alpha_to_one=set_alpha_to_one,
            steps_offset=steps_offset,
            prediction_type=prediction_type,
            clip_sample_range=clip_sample_range,
            sample_max_value=sample_max_value,
            timestep_spacing=timestep_spacing,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            snr_shift_scale=snr_shift_scale,
        )

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        if timesteps is None:
            timesteps = _stored(self.config.step_timesteps, num_inference_steps, "timesteps")
        self.num_inference_steps = len(timesteps)
        self.timesteps = torch.tensor([int(t) for t in timesteps], dtype=torch.long, device=device)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DDIMSchedulerOutput | tuple:
        """x_s = a_s·x̂0 + b_s·ε̂ with x̂0 = α_t·x − s_t·v, ε̂ = s_t·x + α_t·v (α = √ᾱ, s = √(1 − ᾱ)):
        the student's DDIM jump, in the same order of operations."""
        if eta != 0.0:
            raise ValueError("a distilled student samples deterministically; use eta=0.")
        if self.config.prediction_type != "v_prediction":
            raise ValueError(f"{type(self).__name__} steps v-prediction models, not {self.config.prediction_type}.")
        position = int((self.timesteps == int(timestep)).nonzero()[0, 0])
        alpha_bar = self.alphas_cumprod[int(timestep)]
        alpha, s = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
        x0 = alpha * sample - s * model_output
        eps = s * sample + alpha * model_output
        if position + 1 < len(self.timesteps):
            alpha_bar_next = self.alphas_cumprod[int(self.timesteps[position + 1])]
            prev_sample = alpha_bar_next.sqrt() * x0 + (1.0 - alpha_bar_next).sqrt() * eps
        else:  # σ = 0: clean data (ᾱ = 1), where the student's last jump lands
            prev_sample = x0
        if not return_dict:
            return (prev_sample, x0)
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
