"""Reports what a script process can see of the app's credentials: the storage connection
string, BATCHFX_SECRET_* variables, and whether get_secret still answers (through the worker).
"""

import os

from azureml.core import Run


def run(mini_batch):
    storage = any(k.startswith("AzureWebJobsStorage") for k in os.environ)
    secret_vars = any(k.startswith("BATCHFX_SECRET_") for k in os.environ)
    key_ok = Run.get_context().get_secret("cog-key") == "s3cret"
    return [f"{os.path.basename(p)} storage={storage} secret_vars={secret_vars} key_ok={key_ok}"
            for p in mini_batch]
