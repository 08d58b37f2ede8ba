"""Offline validation of cluster files (Ray launcher YAMLs, KubeRay RayJob) against schemas and our rules."""

from ipt_ray.clusters.rules import LOCAL_HOSTS, declares_trial_slot, option_value, shell_args  # noqa: F401
from ipt_ray.clusters.schema import key_path, schema_problems  # noqa: F401
from ipt_ray.clusters.secrets import SECRET_SHAPES, find_secrets, is_literal, is_secret_name  # noqa: F401
from ipt_ray.clusters.launcher import validate_launcher  # noqa: F401
from ipt_ray.clusters.kubernetes import MIN_TOKEN_AUTH_RAY, RAYJOB_SCHEMA, validate_kubernetes  # noqa: F401
from ipt_ray.clusters.validation import (  # noqa: F401
    ClusterValidationError,
    check_cluster_file,
    validate_cluster_file,
)

__all__ = ['RAYJOB_SCHEMA', 'LOCAL_HOSTS', 'MIN_TOKEN_AUTH_RAY', 'ClusterValidationError', 'check_cluster_file',
           'validate_cluster_file', 'validate_launcher', 'validate_kubernetes', 'find_secrets', 'schema_problems',
           'key_path', 'shell_args', 'option_value', 'declares_trial_slot', 'SECRET_SHAPES', 'is_secret_name',
           'is_literal']
