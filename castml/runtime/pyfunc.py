"""MLflow pyfunc wrapper around any `LoadedModel`, so any MLflow runtime can serve it.

Only this module touches pandas, at the pyfunc boundary; castml's own servers call
the `LoadedModel` with numpy directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from castml.runtime.loaded_model import load_model


class AeGbmPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        self.model = load_model(context.artifacts["model"])

    def predict(
        self, context: Any, model_input: Any, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        missing = [f for f in self.model.features if f not in frame.columns]
        if missing:
            raise ValueError(f"missing input columns: {', '.join(missing)}")
        x = frame[self.model.features].to_numpy(dtype=np.float32)
        out = self.model.predict(x)
        latent = out.pop("latent")
        result = pd.DataFrame(out)
        for i in range(latent.shape[1]):
            result[f"latent_{i}"] = latent[:, i]
        return result
