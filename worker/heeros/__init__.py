"""Heeros over HTTP: the wire format of the contract, the client that maps every
failure onto the error tree, and the texts a user sees.
"""

from __future__ import annotations

from worker.heeros.client import HeerosClient, RemoteState, RemoteStatus

__all__ = ["HeerosClient", "RemoteState", "RemoteStatus"]
