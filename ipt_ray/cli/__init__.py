"""The ipt-ray command line."""

from ipt_ray.cli.main import main  # noqa: F401

__all__ = ["main"]
