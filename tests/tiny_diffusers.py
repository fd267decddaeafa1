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


def write_pipeline_folder(
    family: str, folder: Path, seed: int = 0, text_encoder: bool = False, full: bool = False
) -> Path:
    """A local diffusers folder of the tiny ``family`` teacher: ``transformer/`` and ``scheduler/``;
    with ``text_encoder`` (Wan only) also a tiny random UMT5 and a word-level tokenizer, so prompts can
    be encoded by the pipeline itself; with ``full`` every part of the family's pipeline (its text
    encoders, tokenizers and VAE), so that ``diffusers.<Family>Pipeline.from_pretrained(folder)``
    loads and generates ``VIDEO``-sized clips end to end."""
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
    if full:
        index |= _WRITE_TEXT_PARTS[family](folder)
        index |= _write_part(folder / "vae", tiny_vae(family))
    elif text_encoder:
        assert family == "wan", "only the tiny Wan folder has a text encoder without `full`"
        index |= _write_umt5(folder)
        index |= {"vae": [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder


def write_full_pipeline_folders(root: Path, seed: int = 0) -> dict[str, Path]:
    """The complete tiny pipeline folder of every family, ``root/<family>``."""
    return {family: write_pipeline_folder(family, root / family, seed, full=True) for family in FAMILIES}


# The words every tiny tokenizer knows (as whole words; anything else is its unknown token).
WORDS = ("a", "the", "red", "blue", "cat", "dog", "runs", "jumps", "in", "snow")
# Llama 3's pre-tokenizer pattern: words keep their leading space, digits come in groups of up to 3, and
# line breaks are tokens, so HunyuanVideo's prompt template is 95 tokens before the prompt (with the
# BOS), as with the real tokenizer: the pipeline's ``crop_start`` (95) cuts exactly the template away.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA_SPECIAL = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


def t5_tokenizer():
    """A word-level stand-in for the T5 / UMT5 tokenizers: whitespace and punctuation split, unknown
    words to ``<unk>``, ``</s>`` appended, ``<pad>`` (id 0) padding on the right."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", *WORDS]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])  # as T5
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def llama_tokenizer():
    """A word-level stand-in for HunyuanVideo's Llama 3 tokenizer: Llama 3's pre-tokenizer pattern and
    special tokens, ``<|begin_of_text|>`` prepended, a vocabulary of HunyuanVideo's prompt template and
    ``WORDS`` (unknown pieces to ``<unk>``), ``<pad>`` padding on the right."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pre_tokenizer = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated")
    template = DEFAULT_PROMPT_TEMPLATE["template"]
    for special in LLAMA_SPECIAL:
        template = template.replace(special, " ")
    pieces = [piece for piece, _ in pre_tokenizer.pre_tokenize_str(template)]
    pieces += [*WORDS, *(f" {word}" for word in WORDS), ".", ",", "\n\n"]
    vocab = {}
    for piece in ["<pad>", "<unk>", *LLAMA_SPECIAL, *pieces]:
        vocab.setdefault(piece, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in LLAMA_SPECIAL])
    bos = "<|begin_of_text|>"
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token="<|end_of_text|>", pad_token="<pad>", unk_token="<unk>"
    )


def clip_tokenizer():
    """A word-level stand-in for CLIP's tokenizer: lower-cased, whitespace and punctuation split,
    ``<|startoftext|> … <|endoftext|>``, padded with ``<|endoftext|>`` (CLIP pools at the first one)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<|startoftext|>", "<|endoftext|>", "<unk>", *WORDS, ".", ","]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        model_max_length=77,
    )


def tiny_vae(family: str) -> nn.Module:
    """The family's causal video VAE with 4 latent channels, 4× in time and 8× in space, a few channels wide."""
    import diffusers

    torch.manual_seed(2)
    if family == "wan":
        return diffusers.AutoencoderKLWan(
            base_dim=8,
            z_dim=LATENT[0],
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.1, -0.2, 0.0, 0.3][: LATENT[0]],
            latents_std=[1.5, 2.0, 1.0, 2.5][: LATENT[0]],
        ).eval()
    if family == "hunyuan_video":
        return diffusers.AutoencoderKLHunyuanVideo(
            latent_channels=LATENT[0],
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            norm_num_groups=4,
            spatial_compression_ratio=8,
            temporal_compression_ratio=4,
        ).eval()
    return diffusers.AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=LATENT[0],
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        sample_height=VIDEO["height"],
        sample_width=VIDEO["width"],
    ).eval()


def _write_part(path: Path, part) -> dict:
    """Save a model or tokenizer under ``path``; its model_index.json entry."""
    from transformers import PreTrainedTokenizerBase

    part.save_pretrained(path)
    if isinstance(part, PreTrainedTokenizerBase):  # (transformers 5 names the class TokenizersBackend)
        return {path.name: ["transformers", "PreTrainedTokenizerFast"]}
    library = "diffusers" if type(part).__module__.startswith("diffusers") else "transformers"
    return {path.name: [library, type(part).__name__]}


def _write_umt5(folder: Path) -> dict:
    """Wan's text parts: a tiny UMT5 encoder and the word-level T5 tokenizer."""
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = t5_tokenizer()
    torch.manual_seed(1)
    config = UMT5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
    return _write_part(folder / "tokenizer", tokenizer) | _write_part(
        folder / "text_encoder", UMT5EncoderModel(config).eval()
    )


def _write_t5(folder: Path) -> dict:
    """CogVideoX's text parts: a tiny T5 encoder and the word-level T5 tokenizer."""
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer()
    torch.manual_seed(1)
    config = T5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=16, d_ff=64, num_layers=1, num_heads=2)
    return _write_part(folder / "tokenizer", tokenizer) | _write_part(
        folder / "text_encoder", T5EncoderModel(config).eval()
    )


def _write_llama_clip(folder: Path) -> dict:
    """HunyuanVideo's text parts: a tiny Llama (3 layers: the pipeline takes the hidden states 2
    layers before the last) of width TEXT_DIM and a tiny CLIP text model whose pooled output (width
    POOLED_DIM) is the pooled projection, each with its word-level tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer, tokenizer_2 = llama_tokenizer(), clip_tokenizer()
    torch.manual_seed(1)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    clip = CLIPTextConfig(
        vocab_size=len(tokenizer_2),
        hidden_size=POOLED_DIM,
        intermediate_size=32,
        projection_dim=POOLED_DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer_2.bos_token_id,
        eos_token_id=tokenizer_2.eos_token_id,  # not 2: CLIP pools at the first EOS, not at the largest id
        pad_token_id=tokenizer_2.pad_token_id,
    )
    return (
        _write_part(folder / "tokenizer", tokenizer)
        | _write_part(folder / "text_encoder", LlamaModel(llama).eval())
        | _write_part(folder / "tokenizer_2", tokenizer_2)
        | _write_part(folder / "text_encoder_2", CLIPTextModel(clip).eval())
    )


_WRITE_TEXT_PARTS = {"wan": _write_umt5, "cogvideox": _write_t5, "hunyuan_video": _write_llama_clip}


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
