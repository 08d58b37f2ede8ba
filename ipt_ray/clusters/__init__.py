"""Offline validation of cluster files (Ray launcher YAMLs, KubeRay RayJob) against schemas and our rules."""

from ipt_ray.clusters.validation import (  # noqa: F401
    RAYJOB_SCHEMA,
    LOCAL_HOSTS,
    MIN_TOKEN_AUTH_RAY,
    ClusterValidationError,
    check_cluster_file,
    validate_cluster_file,
)

__all__ = ['RAYJOB_SCHEMA', 'LOCAL_HOSTS', 'MIN_TOKEN_AUTH_RAY', 'ClusterValidationError', 'check_cluster_file', 'validate_cluster_file']
