"""The Azure Functions app: wires batchfx's blueprints, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from batchfx.blueprints import http_api, orchestration, scoring

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_api.bp)
app.register_functions(scoring.bp)
app.register_functions(orchestration.bp)
