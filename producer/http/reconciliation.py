"""The dashboard's reconciliations: a run of their own kind, with progress and the report.

    GET  /reconciliations                 the recent reconciliations, a bar each
    GET  /reconciliations/{id}            one report: per export, the counts and each finding

Figures come from :class:`producer.operations.reconcile.Reconciler`; the pages take
the dashboard's session like every other page.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from producer.http.auth import Session, SessionRoute
from producer.operations.reconcile import ReconciliationView, report_of, view_of
from worker.documents.names import is_run
from worker.state.reconciliations import Reconciliations

if TYPE_CHECKING:
    from producer.http.dashboard import Dashboard

SHOWN = 30


def progress(view: ReconciliationView) -> float:
    """The bar's filled share in percent."""
    return 100.0 if not view.total else float(int(1000 * view.checked / view.total) / 10)


def reconciliation_routes(dashboard: "Dashboard") -> APIRouter:
    router = APIRouter(route_class=SessionRoute)
    signed_in = Depends(dashboard.sessions.require)
    recons = Reconciliations.for_store(dashboard.store)

    @router.get("/reconciliations", name="dashboard_reconciliations")
    def listing(request: Request, session: Annotated[Session, signed_in]) -> Response:
        views = [
            view_of(record, recons.findings(record.reconciliation) if record.done else None)
            for record in recons.recent(SHOWN)
        ]
        context = {"views": views, "progress": progress}
        return dashboard.pages.render(request, "reconciliations.html", context, session=session)

    @router.get("/reconciliations/{reconciliation}", name="dashboard_reconciliation")
    def report(
        request: Request, reconciliation: str, session: Annotated[Session, signed_in]
    ) -> Response:
        record = recons.record(reconciliation) if is_run(reconciliation) else None
        if record is None:
            return dashboard.pages.missing(request, session, reconciliation)
        found = report_of(record, recons.findings(reconciliation))
        context = {"report": found, "width": progress(found)}
        return dashboard.pages.render(request, "reconciliation.html", context, session=session)

    return router


__all__ = ["progress", "reconciliation_routes"]
