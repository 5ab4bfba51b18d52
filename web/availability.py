"""Placeholder: filled in by the availability work of issue 7."""

from __future__ import annotations

from fastapi import APIRouter

from web.auth import Auth


def availability_router(auth: Auth) -> APIRouter:
    return APIRouter(include_in_schema=False)
