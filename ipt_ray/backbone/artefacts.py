"""Artefacts on disk without pickle: a folder of tensors (safetensors) and a JSON config.

PEFT's convention: an adapter is ``adapter_model.safetensors`` + ``adapter_config.json``; a prompt table
is ``prompt_table.safetensors`` + ``prompt_table_config.json``; a pretrained prompt encoder
``encoder.safetensors`` + ``encoder_config.json``. The JSON holds a format tag, the
identity of the backbone the tensors were made for (:meth:`ipt_ray.backbone.Backbone.identity`) and
whatever else describes the artefact; every tensor is in the safetensors file.

Reading uses ``safetensors.torch.load_file`` and ``json`` only. A file that is not safetensors (a torch
pickle such as a legacy ``adapter.pt``, whatever its name) is refused unread, naming the file:
unpickling runs whatever code the file carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from safetensors import SafetensorError

from ipt_ray.system import replace_whole, written_whole

if TYPE_CHECKING:
    import torch

#: safetensors' own limit on the JSON header (bytes); a larger "length" means the file is something else.
MAX_HEADER_BYTES = 100_000_000
#: Suffixes of the pickle formats ipt-ray wrote before (and torch users write): named when refused.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
#: Tensor names a soft-prompt file may use, in order of preference (``source.prompt``: an adapter's own).
SOFT_PROMPT_NAMES = ("prompt", "source.prompt")
REFUSED = ("refused unread: unpickling runs whatever code a file carries, so ipt-ray reads tensors only "
           "from safetensors files")


class ArtefactError(ValueError):
    """A file or folder that is not the artefact asked for; the message names it."""


@dataclass(frozen=True)
class ArtefactKind:
    """One kind of artefact folder: its format tag, its two file names, the tensors it must hold."""

    what: str  # in messages: "adapter", "prompt-table checkpoint"
    format: str  # the JSON's "format"
    weights: str  # the safetensors file
    config: str  # the JSON file
    required: tuple[str, ...] = ()  # tensor names every artefact of this kind holds

    def not_one(self, path: Path | str, why: str = "") -> ArtefactError:
        detail = f": {why}" if why else ""
        return ArtefactError(f"{path}: not an ipt-ray {self.what} (format {self.format}){detail}")


ADAPTER = ArtefactKind("adapter", "ipt-ray/adapter/v2", "adapter_model.safetensors", "adapter_config.json")
PROMPT_TABLE = ArtefactKind("prompt-table checkpoint", "ipt-ray/prompt-table/v2", "prompt_table.safetensors",
                            "prompt_table_config.json", required=("table",))
#: An Encoder IPT encoder body ``ipt-ray pretrain`` trained (``encoder.*``, with its classifier head ``head.*``),
#: in ``<pretrain output>/encoder_<type>/``; ``method.encoder_init`` loads it.
PROMPT_ENCODER = ArtefactKind("prompt-encoder checkpoint", "ipt-ray/prompt-encoder/v1", "encoder.safetensors",
                              "encoder_config.json")


@dataclass
class ArtefactInfo:
    """What an artefact's headers say, no tensor read: its folder, its JSON config, its tensors' shapes."""

    directory: Path
    config: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]

    @property
    def identity(self) -> dict[str, Any]:
        return self.config["backbone"]


@dataclass
class Artefact(ArtefactInfo):
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> tensor, on the CPU


# ---------------------------------------------------------------- writing


def save_artefact(directory: str | Path, kind: ArtefactKind, tensors: Mapping[str, torch.Tensor],
                  config: Mapping[str, Any], identity: Mapping[str, Any]) -> Path:
    """Write ``kind.weights`` (the tensors) and ``kind.config`` (format, backbone identity, ``config``).

    Each file is written to a temporary name and renamed, the config last: a reader never sees a
    half-written artefact. Returns the folder.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ArtefactError(f"{directory} is a file; an ipt-ray {kind.what} is a folder ({kind.weights} + "
                            f"{kind.config}): give a folder path")
    missing = [name for name in kind.required if name not in tensors]
    if missing:
        raise ValueError(f"an ipt-ray {kind.what} needs the tensors {missing}")
    body = {"format": kind.format, "backbone": dict(identity), **config}
    text = json.dumps(body, indent=2, default=_json_value)  # before any write: a bad value leaves nothing
    directory.mkdir(parents=True, exist_ok=True)
    weights, config_file = directory / kind.weights, directory / kind.config
    from safetensors.torch import save_file  # torch: only where tensors are written (not in a sweep's driver)

    with written_whole(weights) as tmp:
        save_file(_unshared(tensors), str(tmp), metadata={"format": "pt"})
    replace_whole(config_file, text.encode())
    return directory


def _unshared(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, each owning exactly its memory (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in tensors.items():
        value = value.detach().cpu().contiguous()
        storage = value.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() != value.numel() * value.element_size():
            value = value.clone()  # a view into a larger tensor, or tied to another entry
        seen.add(value.untyped_storage().data_ptr())
        out[name] = value
    return out


def _json_value(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------- reading


def artefact_files(path: str | Path, kind: ArtefactKind) -> tuple[Path, Path]:
    """``(weights, config)`` of the artefact at ``path``: its folder, or the folder's ``kind.weights`` file.

    Anything else (a legacy ``adapter.pt``, a pickle under any name) is refused unread.
    """
    path = Path(path).expanduser()
    if path.is_file():
        if path.name != kind.weights:
            raise kind.not_one(path, f"{not_safetensors(path) or f'not {kind.weights}'}; {REFUSED}")
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"no {kind.what} at {path}")
    weights = path / kind.weights
    if not weights.is_file():
        legacy = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        why = f"no {kind.weights}" + (f"; {', '.join(legacy)}: a pickle (the old format), {REFUSED}" if legacy else "")
        raise kind.not_one(path, why)
    return weights, path / kind.config


def inspect_artefact(path: str | Path, kind: ArtefactKind) -> ArtefactInfo:
    """The artefact's config and tensor shapes from its two headers (JSON only, no tensor data read)."""
    weights, config_file = artefact_files(path, kind)
    why = not_safetensors(weights)
    if why is not None:
        raise kind.not_one(weights, f"{why}; {REFUSED}")
    shapes = tensor_shapes(weights, kind.what)
    if not config_file.is_file():
        raise kind.not_one(weights.parent, f"{kind.weights} without {kind.config}")
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise kind.not_one(config_file, f"not JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != kind.format or not isinstance(config.get("backbone"), dict):
        raise kind.not_one(config_file)
    missing = [name for name in kind.required if name not in shapes]
    if missing:
        raise kind.not_one(weights, f"no tensor {', '.join(map(repr, missing))}")
    return ArtefactInfo(weights.parent, config, shapes)


def load_artefact(path: str | Path, kind: ArtefactKind) -> Artefact:
    """The artefact at ``path`` (its folder or its weights file), tensors on the CPU; no pickle is read."""
    info = inspect_artefact(path, kind)
    tensors = read_tensors(info.directory / kind.weights, kind.what)
    return Artefact(info.directory, info.config, info.shapes, tensors)


def not_safetensors(file: Path) -> str | None:
    """Why ``file`` is not a safetensors file (from its first bytes), or None when it may be one."""
    with open(file, "rb") as f:
        head = f.read(9)
    if head.startswith(b"PK\x03\x04"):
        return f"{file.name} is a zip archive, as torch.save writes them (a pickle inside)"
    if head[:1] == b"\x80":
        return f"{file.name} is a pickle"
    length = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) < 9 or length > min(MAX_HEADER_BYTES, file.stat().st_size - 8) or head[8:9] != b"{":
        return f"{file.name} has no safetensors header"
    return None


def tensor_shapes(file: str | Path, what: str) -> dict[str, tuple[int, ...]]:
    """``name -> shape`` from a safetensors file's JSON header; a file that is not safetensors is refused."""
    file = Path(file)
    why = not_safetensors(file)
    if why is not None:
        raise ArtefactError(f"{what} {str(file)!r}: {why}; {REFUSED}")
    with open(file, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(length))
        except (ValueError, UnicodeDecodeError) as err:
            raise ArtefactError(f"{what} {str(file)!r}: not a safetensors file (bad header: {err})") from None
    return {name: tuple(int(n) for n in entry["shape"]) for name, entry in header.items() if name != "__metadata__"}


def read_tensors(file: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Every tensor of one safetensors file, on the CPU; a file that is not safetensors is refused unread."""
    file = Path(file)
    tensor_shapes(file, what)  # the header check: refuses pickles before safetensors sees the file
    from safetensors.torch import load_file  # torch: only where tensors are read (not in a sweep's driver)

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtefactError(f"{what} {str(file)!r}: not a readable safetensors file ({err})") from None


def soft_prompt_name(names: Iterable[str], what: str, file: str | Path) -> str:
    """Which tensor of a soft-prompt file is the prompt: ``prompt``, ``source.prompt`` or the only one."""
    names = list(names)
    for name in SOFT_PROMPT_NAMES:
        if name in names:
            return name
    if len(names) == 1:
        return names[0]
    raise ArtefactError(f"{what} {str(file)!r} holds the tensors {names}: expected one, or one named "
                        f"{' or '.join(map(repr, SOFT_PROMPT_NAMES))}")
