"""Training LightningModules: they coordinate; the math lives in diffusion/, losses.py and sampling.py."""

from dcm_lightning.modules.consistency import (
    ConsistencyDistillationModule,
    PhasedConsistencyModule,
    SemEModule,
    VanillaConsistencyModule,
)
from dcm_lightning.modules.dete import DetEModule
from dcm_lightning.modules.teacher import TeacherModule

__all__ = [
    "ConsistencyDistillationModule",
    "DetEModule",
    "PhasedConsistencyModule",
    "SemEModule",
    "TeacherModule",
    "VanillaConsistencyModule",
]
