"""dcm_lightning: distill video diffusion teachers into few-step Dual-Expert Consistency Models."""

__version__ = "0.1.0"
