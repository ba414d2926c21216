"""Projections of embedding banks for viewing (UMAP)."""

from .umap_projection import Projection, curve_parameters

__all__ = ["Projection", "curve_parameters"]
