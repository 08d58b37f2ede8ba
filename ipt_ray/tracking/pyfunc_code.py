"""The pyfunc model as MLflow "models from code": MLflow runs this file when it loads the model, so the
model folder holds no pickle (the adapters are safetensors + JSON, as everywhere in ipt-ray)."""

import mlflow.models

from ipt_ray.tracking.pyfunc import AdapterEnsembleModel

mlflow.models.set_model(AdapterEnsembleModel())
