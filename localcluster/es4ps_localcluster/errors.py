"""The local cluster's one error: something could not start; the message says which part and where its log is."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says which part and where its log is."""
