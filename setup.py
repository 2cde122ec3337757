"""Build glue that pyproject.toml cannot express: the top-level ``models/`` and ``quantize/``
folders (configs, the shipped student, INT8 recipes) go into the wheel as package data under
``edgeseg/_assets/``, where :mod:`edgeseg.assets` finds them; in a checkout it reads the folders
themselves."""
from setuptools import find_packages, setup

ASSETS = {"models": ["*.yaml", "*.pt", "README.md"], "quantize": ["*.yaml", "README.md"]}

setup(
    packages=find_packages(include=["edgeseg", "edgeseg.*"]) + [f"edgeseg._assets.{f}" for f in ASSETS],
    package_dir={f"edgeseg._assets.{f}": f for f in ASSETS},
    package_data={f"edgeseg._assets.{f}": patterns for f, patterns in ASSETS.items()},
)
