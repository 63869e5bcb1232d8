"""A Heeros sandbox: the Heeros API of ``heeros-api-contract.md`` as a real HTTP server, with
per-tenant state, Finvoice 3.0 validation and knobs for latency and faults.

It models the Heeros side from the contract alone and shares no code with the client.
"""

from __future__ import annotations

from sandbox.app import create_app
from sandbox.knobs import Knobs

__all__ = ["Knobs", "create_app"]
