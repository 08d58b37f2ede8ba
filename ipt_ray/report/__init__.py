"""Paper-style reports: methods x tasks tables, published numbers, significance tests, plots, ``ipt-ray report``.

Every public name is re-exported here and in :mod:`ipt_ray.report.paper` (the namespace the CLI uses).
"""

from ipt_ray.report.paper import *  # noqa: F401,F403 - the package's public names, listed once in paper.__all__
from ipt_ray.report.paper import __all__  # noqa: F401
