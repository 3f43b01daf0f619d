"""MLflow "models from code" entry: the pyfunc is built from this file, not unpickled."""

import mlflow.models

from castml.runtime.pyfunc import ModelPyfunc

mlflow.models.set_model(ModelPyfunc())
