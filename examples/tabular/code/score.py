"""Azure ML tabular scoring script: the churn probability of each customer.

`run()` gets one mini-batch of rows as a pandas DataFrame (batchfx reads the Parquet row
groups for it) and returns one row per customer: its id, the predicted class and the
probability of churning.
"""

import logging
import os

import joblib
import pandas as pd

logger = logging.getLogger(__name__)

FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract",
    "internet",
    "paperless_billing",
]

model = None


def init():
    """Load the model once per worker."""
    global model
    # As in Azure ML: the model folder (registered from a folder named "model") keeps its
    # name under AZUREML_MODEL_DIR.
    model_path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib")
    model = joblib.load(model_path)
    logger.info("Loaded model %s", model_path)


def run(mini_batch: pd.DataFrame) -> pd.DataFrame:
    """Score the mini-batch's customers: one output row per input row."""
    probabilities = model.predict_proba(mini_batch[FEATURES])
    result = pd.DataFrame(
        {
            "customer_id": mini_batch["customer_id"].to_numpy(),
            "churn": model.classes_[probabilities.argmax(axis=1)],  # = model.predict()
            "churn_probability": probabilities[:, 1],
        }
    )
    logger.info("Scored %d customers", len(result))
    return result
