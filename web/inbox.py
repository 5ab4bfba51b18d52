"""Placeholder: filled in by the inbox work of issue 7."""

from __future__ import annotations

from fastapi import APIRouter

from web.auth import Auth


def inbox_router(auth: Auth) -> APIRouter:
    return APIRouter(include_in_schema=False)
