"""Sweeps: one probe over many prompts, seeds, concepts and checkpoints, each cell a run directory."""

from .report import write_sweep_dashboard
from .runner import merge_tables, run_sweep
from .spec import Cell, Sweep, SweepError, load_sweep, parse_sweep

__all__ = ["Cell", "Sweep", "SweepError", "load_sweep", "merge_tables", "parse_sweep", "run_sweep", "write_sweep_dashboard"]
