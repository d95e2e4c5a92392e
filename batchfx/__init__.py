"""batchfx: Azure-ML-style batch inference as a serverless Azure Functions app."""

__version__ = "0.1.0"
