"""The planner's YAML files (a roster's input, an events calendar), read into pydantic
models with one clear error: the file and the first field that is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ccserver.errors import InputError

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path, model: type[M]) -> M:
    """`path` as a `model`; an empty file is an empty mapping."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read it as YAML ({exc})") from None
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InputError(f"{path}: {where}: {first['msg']}") from None
