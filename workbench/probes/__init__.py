"""Probes: declarative analyses (TOML files in probes/) run into run directories."""

from .report import run_sections, run_settings, write_run_dashboard
from .record import RunDirectoryError, read_record
from .runner import run_probe
from .spec import Probe, ProbeError, load_probe, parse_probe

__all__ = ["Probe", "ProbeError", "RunDirectoryError", "load_probe", "parse_probe", "read_record", "run_probe", "run_sections", "run_settings", "write_run_dashboard"]
