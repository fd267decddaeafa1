"""diffusers pipelines and schedulers for exported students (``export`` of a real teacher's student).

An export is a diffusers pipeline folder. Wan2.1 students use diffusers' own two-transformer
``WanPipeline`` (``transformer`` the semantic expert, ``transformer_2`` the detail expert, switched at
``boundary_ratio``); HunyuanVideo and CogVideoX students use the pipelines here, which add the same
``transformer_2`` / ``boundary_ratio`` to diffusers' pipelines. Every export's scheduler is one of
``schedulers``, replaying the student's own σ lists.

diffusers resolves a ``model_index.json`` ``_class_name`` outside diffusers through a module file in
the folder, and components from a module outside diffusers only once that module is imported. So a
HunyuanVideo or CogVideoX export carries a one-line ``pipeline.py`` that imports its class from here
(``_class_name: ["pipeline", "DCMHunyuanVideoPipeline"]``), and loads as a Hub pipeline with custom
code does::

    import dcm_lightning.pipelines  # the exported schedulers
    pipe = diffusers.DiffusionPipeline.from_pretrained(folder)  # a Wan student: diffusers' WanPipeline
    pipe = diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)  # HunyuanVideo, CogVideoX
"""

from __future__ import annotations

from diffusers import WanPipeline

from dcm_lightning.pipelines.cogvideox import DCMCogVideoXPipeline
from dcm_lightning.pipelines.hunyuan_video import DCMHunyuanVideoPipeline
from dcm_lightning.pipelines.schedulers import DCMCogVideoXDDIMScheduler, DCMFlowMatchEulerDiscreteScheduler

# The pipeline class of a student, by its teacher's pipeline class (model_index.json's _class_name).
STUDENT_PIPELINES = {
    "WanPipeline": WanPipeline,
    "HunyuanVideoPipeline": DCMHunyuanVideoPipeline,
    "CogVideoXPipeline": DCMCogVideoXPipeline,
}

__all__ = [
    "STUDENT_PIPELINES",
    "DCMCogVideoXDDIMScheduler",
    "DCMCogVideoXPipeline",
    "DCMFlowMatchEulerDiscreteScheduler",
    "DCMHunyuanVideoPipeline",
]
