"""cluster.toml on disk: read it, or check and write it atomically (the codec is the domain's)."""

from __future__ import annotations

import os
from pathlib import Path

from skutui.domain.codec import FILE_MODE, ConfigError, dumps, load_bytes
from skutui.domain.errors import ValidationError
from skutui.domain.model import ClusterConfig
from skutui.system.files import write_text_atomic


def load(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and check cluster.toml."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "the file does not exist; create the cluster first.") from None
    except OSError as error:
        raise ConfigError(path, f"the file cannot be read: {error.strerror or error}.") from None
    return load_bytes(raw, source=str(path))


def save(cfg: ClusterConfig, path: str | os.PathLike[str]) -> None:
    """Check ``cfg`` and write it atomically with mode 0600.

    A bad value raises ValidationError (its ``field`` tells the UI which input to mark);
    anything else that stops the write raises ConfigError. Either way the old file stays.
    """
    try:
        text = dumps(cfg)
    except ValidationError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(path, f"the file cannot be written: {error}.") from None
    try:
        write_text_atomic(path, text, FILE_MODE)
    except OSError as error:
        raise ConfigError(path, f"the file cannot be written: {error.strerror or error}.") from None


