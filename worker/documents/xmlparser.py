"""The one way the exporter parses XML: no DTD, no entity expansion, no network.

A stylesheet or a document is data, never a fetch. A new parser is made for each
document (about a microsecond): one parser shared by a worker's threads mixes
their libxml2 dictionaries, so names of one document turn up in another's.
"""

from __future__ import annotations

from lxml import etree


def safe_parser(*, strip: bool = False) -> etree.XMLParser:
    """A fresh hardened parser; ``strip`` also drops blank text, comments and processing
    instructions (for input read from outside, whose layout carries nothing)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=strip,
        remove_comments=strip,
        remove_pis=strip,
    )


__all__ = ["safe_parser"]
