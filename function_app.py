"""The Azure Functions app: wires batchfx's blueprints, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from batchfx.blueprints import (
    blob_drop,
    deployments_api,
    http_api,
    models_api,
    orchestration,
    schedules_api,
    scoring,
)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_api.bp)
app.register_functions(scoring.bp)
app.register_functions(orchestration.bp)
app.register_functions(deployments_api.bp)
app.register_functions(models_api.bp)
app.register_functions(schedules_api.bp)
app.register_functions(blob_drop.bp)
