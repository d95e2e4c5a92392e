"""The Azure Functions app: wires batchfx's blueprints, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from batchfx.api import (
    blob_drop,
    deployments,
    jobs,
    models,
    orchestration,
    schedules,
    scoring,
)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(jobs.bp)
app.register_functions(scoring.bp)
app.register_functions(orchestration.bp)
app.register_functions(deployments.bp)
app.register_functions(models.bp)
app.register_functions(schedules.bp)
app.register_functions(blob_drop.bp)
