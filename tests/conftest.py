"""Tiny random BERT / RoBERTa checkpoints with tokenizers trained in-process: no test needs the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tiny_models import make_tiny_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray Train gives a TorchTrainer's workers 60 s to start; on a 2-core CI machine that is also running other
# trials a worker once took longer and the trial errored. Ray propagates this from the driver's environment.
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "300")
torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_backbones(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {
        f"{kind}{'-mlm' if mlm else ''}": make_tiny_backbone(root / f"{kind}{'-mlm' if mlm else ''}", kind, mlm)
        for kind in ("bert", "roberta") for mlm in (False, True)
    }


@pytest.fixture(scope="session")
def bert(tiny_backbones):
    """The tiny BERT, loaded and frozen (tests train adapters over it, never the backbone itself)."""
    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import BackboneConfig

    return load_backbone(BackboneConfig(name=str(tiny_backbones["bert"])))


@pytest.fixture(scope="session")
def roberta(tiny_backbones):
    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import BackboneConfig

    return load_backbone(BackboneConfig(name=str(tiny_backbones["roberta"])))


@pytest.fixture(scope="session")
def tiny_bert(tiny_backbones) -> Path:
    return tiny_backbones["bert"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED_DATA
