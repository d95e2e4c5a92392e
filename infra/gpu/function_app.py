"""The GPU scorer image's function app: the queue-triggered scorer alone.

Copied into the image as ``function_app.py`` (infra/gpu/Dockerfile). No HTTP function, no
timer (the every-minute schedule timer would keep a GPU replica awake) and no Durable
Functions (the orchestrations and their storage backend stay with the main app): the
container takes mini-batch messages from the queue, scores them and records them, and
KEDA scales it on the queue's length.
"""

import azure.functions as func

from batchfx.api import scoring

app = func.FunctionApp()
app.register_functions(scoring.bp)
