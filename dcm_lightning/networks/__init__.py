"""Networks: the tiny video transformer (and, later, discriminator heads)."""

from dcm_lightning.networks.tiny_dit import TINY_DIT_SIZES, TinyDiTConfig, TinyVideoDiT

__all__ = ["TINY_DIT_SIZES", "TinyDiTConfig", "TinyVideoDiT"]
