"""The invoices of a run: accepted ones held as their kept copies, refused ones with reasons."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from worker.documents.invoice import Invoice
from worker.documents.keptcopy import copy_version, decompress_invoice, kept_copy
from worker.errors import PermanentError


@dataclass(frozen=True)
class Rejected:
    """An invoice refused at intake, with the reason; it fails alone."""

    number: str
    error: PermanentError


@dataclass(frozen=True)
class KeptInvoice:
    """An invoice accepted at intake, held as its kept copy until its run is recorded.

    The models of a big period would not fit in memory (ten thousand invoices of ten
    rows take about 400 MB); their copies take a few megabytes.
    """

    number: str
    customer_number: str
    copy: bytes = field(repr=False)
    version: str = ""
    """The copy's version (:func:`~worker.documents.keptcopy.copy_version`), which the
    run records with the invoice's items; worked out from the copy when not given."""
    period: str = ""
    """The invoice's own period, when known without reading the copy."""

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", copy_version(self.copy, number=self.number))

    @classmethod
    def of(cls, invoice: Invoice) -> KeptInvoice:
        copy, version = kept_copy(invoice)
        customer = invoice.customer.customer_number
        return cls(invoice.number, customer, copy, version=version, period=invoice.period)

    def invoice(self) -> Invoice:
        """The invoice model, read back from its copy."""
        return decompress_invoice(self.copy, number=self.number)


RunInvoice = Invoice | KeptInvoice
"""An invoice of a run: the model, or its kept copy."""


def kept(invoices: Iterable[RunInvoice]) -> list[KeptInvoice]:
    """Each invoice as its kept copy."""
    return [i if isinstance(i, KeptInvoice) else KeptInvoice.of(i) for i in invoices]


__all__ = ["KeptInvoice", "Rejected", "RunInvoice", "kept"]
