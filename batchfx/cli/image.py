"""``batchfx image SPEC``: the GPU scorer image's requirements, or its whole build context,
with the environment a job spec or Azure ML deployment YAML names."""

from __future__ import annotations

from pathlib import Path

import click

from batchfx.core.environments import parse_environment, read_environment_files
from batchfx.core.image import (
    DOCKERFILE,
    ImageError,
    build_context,
    image_python,
    scorer_requirements,
    source_root,
)
from batchfx.core.spec_io import load_yaml, read_spec_document

__all__ = ["image"]


@click.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(path_type=Path),
              help="Write the whole build context here (a new or empty folder); without it, "
              "print the requirements the image would install.")
def image(spec_file: Path, output: Path | None) -> None:
    """The GPU scorer image for SPEC_FILE's environment (a job spec or an Azure ML
    deployment YAML): its packages installed in the image, not built by a worker."""
    try:
        root = source_root()
        python = image_python((root / DOCKERFILE).read_text(encoding="utf-8"))
        text = spec_file.read_text(encoding="utf-8")
        document = read_environment_files(read_spec_document(spec_file, text),
                                          spec_file.resolve().parent, load_yaml)
        value = document.get("environment") if isinstance(document, dict) else None
        requirements = scorer_requirements(parse_environment(value), python)
        if output is None:
            click.echo(requirements, nl=False)
            return
        build_context(root, output, requirements)
    except ImageError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"build context in {output}/ (Python {python or '?'}); build it with\n"
               f"  docker build -f {output}/{DOCKERFILE} -t <registry>/batchfx-gpu:<tag> "
               f"{output}\n"
               f"  az acr build --registry <registry> --image batchfx-gpu:<tag> "
               f"--file {DOCKERFILE} {output}")
