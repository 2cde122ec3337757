"""The edgeseg version: one place, read by the package, the metadata of every export and the build."""
__version__ = "0.1.0"
