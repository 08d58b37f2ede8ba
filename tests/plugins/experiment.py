"""An experiment YAML that runs the plugin strategy of ``scaled_prompt.py`` on a tiny backbone."""

from __future__ import annotations

from pathlib import Path

import yaml

PLUGIN = Path(__file__).resolve().parent / "scaled_prompt.py"


def plugin_yaml(tmp_path: Path, backbone: Path, **method) -> Path:
    data = {
        "plugins": [str(PLUGIN)],
        "task": {"name": "cb", "max_train_samples": 24, "max_eval_samples": 20, "max_length": 48},
        "backbone": {"name": str(backbone)},
        "method": {"strategy": "scaled_prompt", "prompt_length": 4, "prompt_scale": 0.5, **method},
        "train": {"epochs": 1, "batch_size": 8, "seeds": [0, 1], "output_dir": str(tmp_path / "runs"),
                  "progress": False},
        "sweep": {"name": "plugin-sweep", "num_samples": 2, "searcher": "grid", "max_concurrent_trials": 1, "search_space": {
            "method.strategy": {"type": "choice", "values": ["prompt_tuning", "scaled_prompt"]}}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "plugin"},
        "cluster": {"num_workers": 0},
    }
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
