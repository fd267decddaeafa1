"""Teacher adapters: every teacher answers in (x̂0, ε̂) at a noise level σ, plus block features."""

from dcm_lightning.teachers.base import Prediction, VideoModel
from dcm_lightning.teachers.tiny import SHIPPED_TINY_TEACHER, TinyTeacher

__all__ = ["SHIPPED_TINY_TEACHER", "Prediction", "TinyTeacher", "VideoModel"]
