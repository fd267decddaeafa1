"""Tiny random-weight instances of the three real teacher families, and local pipeline folders laid
out as the real ones are (model_index.json, transformer/, scheduler/, optionally text_encoder/ and
tokenizer/), so the real loading, caching and training code runs on CPU in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from dcm_lightning.teachers.wan import WAN21_T2V_1_3B

FAMILIES = ("hunyuan_video", "wan", "cogvideox")
PIPELINES = {"hunyuan_video": "HunyuanVideoPipeline", "wan": "WanPipeline", "cogvideox": "CogVideoXPipeline"}
TEXT_DIM, TEXT_TOKENS, POOLED_DIM = 32, 7, 16
LATENT = (4, 5, 8, 8)  # c f h w (5 latent frames: the temporal coherence lag 3 fits)
VIDEO = dict(num_frames=17, height=64, width=64)  # → LATENT through the 4× / 8× VAEs

TINY_HUNYUAN = dict(
    in_channels=4,
    out_channels=4,
    num_attention_heads=2,
    attention_head_dim=16,
    num_layers=2,
    num_single_layers=2,
    num_refiner_layers=1,
    mlp_ratio=2.0,
    patch_size=2,
    patch_size_t=1,
    text_embed_dim=TEXT_DIM,
    pooled_projection_dim=POOLED_DIM,
    rope_axes_dim=(4, 6, 6),
)
TINY_WAN = dict(  # Wan2.1-1.3B's architecture, shrunk
    WAN21_T2V_1_3B,
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    text_dim=TEXT_DIM,
    freq_dim=32,
    ffn_dim=64,
    num_layers=4,
    rope_max_seq_len=32,
)
TINY_COGVIDEOX = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    time_embed_dim=16,
    text_embed_dim=TEXT_DIM,
    num_layers=2,
    sample_width=8,
    sample_height=8,
    sample_frames=17,
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=TEXT_TOKENS,
    use_rotary_positional_embeddings=False,
)
COGVIDEOX_2B_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=3.0,
    steps_offset=0,
    timestep_spacing="trailing",
)


def tiny_transformer(family: str, seed: int = 0) -> nn.Module:
    import diffusers

    torch.manual_seed(seed)
    if family == "hunyuan_video":
        return diffusers.HunyuanVideoTransformer3DModel(**TINY_HUNYUAN).eval()
    if family == "wan":
        return diffusers.WanTransformer3DModel(**TINY_WAN).eval()
    return diffusers.CogVideoXTransformer3DModel(**TINY_COGVIDEOX).eval()


def tiny_scheduler(family: str):
    """Each pipeline's scheduler with its released configuration's settings."""
    import diffusers

    if family == "hunyuan_video":
        return diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0)
    if family == "wan":
        return diffusers.UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
        )
    return diffusers.CogVideoXDDIMScheduler(**COGVIDEOX_2B_SCHEDULER)


def write_pipeline_folder(family: str, folder: Path, seed: int = 0, text_encoder: bool = False) -> Path:
    """A local diffusers folder of the tiny ``family`` teacher; with ``text_encoder`` (Wan only) a
    tiny random UMT5 and a word-level tokenizer, so prompts can be encoded by the pipeline itself."""
    folder.mkdir(parents=True, exist_ok=True)
    transformer = tiny_transformer(family, seed)
    scheduler = tiny_scheduler(family)
    transformer.save_pretrained(folder / "transformer")
    scheduler.save_pretrained(folder / "scheduler")
    index = {
        "_class_name": PIPELINES[family],
        "_diffusers_version": "0.42.1",
        "transformer": ["diffusers", type(transformer).__name__],
        "scheduler": ["diffusers", type(scheduler).__name__],
    }
    if text_encoder:
        assert family == "wan", "only the tiny Wan folder has a text encoder"
        index |= _write_umt5(folder)
        index |= {"vae": [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder


def _write_umt5(folder: Path) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "the", "red", "blue", "cat", "dog", "runs", "jumps", "in", "snow"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])  # as T5
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder / "tokenizer")
    torch.manual_seed(1)
    config = UMT5Config(vocab_size=len(words), d_model=TEXT_DIM, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
    UMT5EncoderModel(config).eval().save_pretrained(folder / "text_encoder")
    tokenizer_entry = ["transformers", "PreTrainedTokenizerFast"]
    return {"text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": tokenizer_entry}


def teacher_settings(folder: Path, **overrides) -> dict:
    """The ``teacher:`` block of a distillation config for a tiny pipeline folder (float32 on CPU)."""
    return {"path": str(folder), **VIDEO, "num_steps": 10, "dtype": "float32", **overrides}


def write_latents(family: str, folder: Path, count: int = 8, seed: int = 0) -> Path:
    """Pre-encoded "data latents" with random prompt embeddings (and pooled vectors for Hunyuan)."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(count, TEXT_TOKENS, dtype=torch.uint8)
    mask[::2, 5:] = 0  # padding on the right, as the tokenizers pad
    tensors = {
        "latents": torch.randn(count, *LATENT, generator=generator),
        "text_embeds": torch.randn(count, TEXT_TOKENS, TEXT_DIM, generator=generator),
        "text_mask": mask,
    }
    if family == "hunyuan_video":
        tensors["text_pooled"] = torch.randn(count, POOLED_DIM, generator=generator)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / "part-00000.safetensors")
    return folder
