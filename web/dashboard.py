"""Placeholder: filled in by the dashboard work of issue 7."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from web.auth import Auth, Staff, render


def dashboard_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/dashboard")
    def today(request: Request, staff: Staff = Depends(auth.page)) -> HTMLResponse:
        return render(request, "dash/base.html", staff)

    return router
