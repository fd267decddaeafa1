"""Reading what ``fit`` writes: a Lightning ``.ckpt`` file or a sharded (FSDP2) checkpoint folder.

File IO only; what a checkpoint becomes — a teacher (``teachers.loading``) or a ready sampler
(``generation``) — is decided above. Nothing is unpickled beyond tensors and plain containers
(``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dcm_lightning.distributed import is_sharded_checkpoint, read_sharded_checkpoint
from dcm_lightning.errors import UserError

MODULE_KEY = "dcm_lightning_module"  # the class that wrote a checkpoint, by its name in dcm_lightning.modules


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A ``fit`` checkpoint: a ``.ckpt`` file, or a sharded (FSDP2) checkpoint folder read whole."""
    path = Path(path)
    if is_sharded_checkpoint(path):
        return read_sharded_checkpoint(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, not a traceback
        raise UserError(f"{path} is not a readable Lightning checkpoint ({type(error).__name__}).") from None


def is_module_checkpoint(path: str | Path | None, *names: str) -> bool:
    """Whether ``path`` is a ``fit`` checkpoint written by one of the modules ``names`` (any, if none)."""
    if path is None or not (Path(path).is_file() or is_sharded_checkpoint(path)):
        return False
    written_by = read_lightning_checkpoint(path).get(MODULE_KEY)
    return written_by is not None and (not names or written_by in names)
