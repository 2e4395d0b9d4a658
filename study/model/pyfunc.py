"""The best model as MLflow loads it, by "models from code" (no pickle): study/model/best.py
logs this file with the model, and `mlflow.pyfunc.load_model` runs it beside the fsvae code
the model ships (code_paths), then calls load_context with the assembled folder
(fsvae.packaged). So it imports nothing of this repository but fsvae.

Input: uint8 pixels (N, 3, load_size, load_size), decoded as fsvae.data decodes a dataset.
Output: a DataFrame of class probabilities, one column per class name.
"""

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from fsvae import packaged


class StyleModel(PythonModel):
    def load_context(self, context) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = packaged.load(context.artifacts["model"]).to(device)

    # The ndarray hint: MLflow checks the input against the logged signature instead.
    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            probs = self.model(torch.as_tensor(np.asarray(model_input)).to(device))
        return pd.DataFrame(probs.cpu().numpy(), columns=self.model.classes)


mlflow.models.set_model(StyleModel())
