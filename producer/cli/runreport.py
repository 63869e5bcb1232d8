"""What the commands that start a run share: the preview option, the names they are given
checked, and what a run did, reported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from producer.cli.console import errors, report
from producer.cli.environment import refuse
from producer.operations.views import Rejection, RunAccepted
from worker.documents.names import check_number, check_period
from worker.errors import InvoiceError

PreviewDir = Annotated[
    Path | None,
    typer.Option(
        "--preview",
        metavar="DIR",
        help="Build, transform and check every invoice, write its Finvoice file to DIR as "
        "<invoice number>.xml, and send nothing: the run is marked as a preview.",
    ),
]


def check_names(*, period: str | None = None, numbers: list[str] | tuple[()] = ()) -> None:
    """A period or invoice numbers that are not names end the command, in one line."""
    try:
        if period is not None:
            check_period(period)
        for number in numbers:
            check_number(number)
    except InvoiceError as error:
        raise refuse(str(error)) from None


def report_run(accepted: RunAccepted, *, read: int, refused: int, out_dir: Path | None) -> None:
    """What a run did (console.report), its input's words escaped for the terminal; then how
    many of the invoices read were refused, and whether all of them were listed."""
    shown = [Rejection(number=escape(r.number), reason=escape(r.reason)) for r in accepted.rejected]
    report(accepted.model_copy(update={"rejected": shown}), out_dir=out_dir)
    if refused and not accepted.existing:
        more = (
            f" (the first {len(shown)} shown; the dashboard lists them all)"
            if refused > len(shown)
            else ""
        )
        errors.print(f"{refused} of {read} invoices refused{more}", highlight=False)


__all__ = ["PreviewDir", "check_names", "report_run"]
