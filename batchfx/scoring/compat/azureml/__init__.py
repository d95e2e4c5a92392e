"""``azureml``: a namespace shared with any other azureml-* package installed (pkgutil style,
as azureml-core's own)."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
