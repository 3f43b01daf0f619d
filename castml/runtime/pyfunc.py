"""MLflow pyfunc wrapper around any `LoadedModel`, so any MLflow runtime can serve it.

Only this module touches pandas, at the pyfunc boundary; castml's own servers call
the `LoadedModel` with numpy directly. Raw typed columns (text categoricals, missing
values, datetimes) are encoded by the model's own `encoding.json` first, by the same
numpy encoder training used; a model directory without one (ae_gbm before issue 11)
takes float columns as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from castml.data.tabular_encoding import EncodingState, frame_columns
from castml.runtime.loaded_model import load_model
from castml.runtime.model_bundle import has_encoding, read_encoding


class ModelPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        directory = Path(context.artifacts["model"])
        self.model = load_model(directory)
        self.encoding: EncodingState | None = (
            read_encoding(directory) if has_encoding(directory) else None
        )

    def predict(
        self, context: Any, model_input: Any, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        names = self.encoding.names if self.encoding is not None else self.model.features
        missing = [f for f in names if f not in frame.columns]
        if missing:
            raise ValueError(f"missing input columns: {', '.join(missing)}")
        if self.encoding is not None:
            x = self.encoding.encode(frame_columns(frame, names), np.float32)
        else:
            x = frame[names].to_numpy(dtype=np.float32)
        out = self.model.predict(x)
        latent = out.pop("latent", None)
        result = pd.DataFrame(out)
        if latent is not None:
            for i in range(latent.shape[1]):
                result[f"latent_{i}"] = latent[:, i]
        return result
