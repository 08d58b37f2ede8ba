"""What a sweep trained, in use: ``ipt-ray predict`` on files and ``ipt-ray serve`` on Ray Serve.

Adapters come from folders, MLflow runs or registered models (:mod:`ipt_ray.serve.sources`). The Ray Serve
deployment is ``ipt_ray.serve.deployment`` (it imports Ray Serve: import it by name, as ``ipt-ray serve`` does).
"""

from ipt_ray.serve.naming import default_name, named_adapters
from ipt_ray.serve.predict import model_columns, predict_file, read_inputs
from ipt_ray.serve.sources import adapter_folders_under, resolve_source

__all__ = ["default_name", "named_adapters", "model_columns", "predict_file", "read_inputs", "adapter_folders_under", "resolve_source"]
