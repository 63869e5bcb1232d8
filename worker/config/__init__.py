"""Configuration: the process settings (``HEEROS_*``), the export configuration shaped
like Opter's screens, and the Start text of an export.
"""

from __future__ import annotations

from worker.config.exports import load_export_config, parse_export_config
from worker.config.sections import Export, ExportConfig
from worker.config.settings import Settings
from worker.config.starttext import SendOptions, parse_start_text

__all__ = [
    "Export",
    "ExportConfig",
    "SendOptions",
    "Settings",
    "load_export_config",
    "parse_export_config",
    "parse_start_text",
]
