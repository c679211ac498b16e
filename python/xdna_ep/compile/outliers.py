"""Moved to xdna_ep.passes.split_outliers (the MLP outlier split is a named graph
pass now). This re-export keeps the old import path working for callers outside
compile/ until they import the pass module; nothing inside the package uses it."""

from ..passes.split_outliers import find_mlp_chains, outlier_channels, split_chain, split_outliers

__all__ = ["find_mlp_chains", "outlier_channels", "split_chain", "split_outliers"]
