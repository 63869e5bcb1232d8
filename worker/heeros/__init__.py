"""Heeros over HTTP: the wire format of the contract, the client that maps every
failure onto the error tree, the login sessions its clients share, and an invoice's
status in Heeros in the project's own terms.
"""

from __future__ import annotations

from worker.heeros.client import HeerosClient
from worker.heeros.remote import RemoteState, RemoteStatus

__all__ = ["HeerosClient", "RemoteState", "RemoteStatus"]
