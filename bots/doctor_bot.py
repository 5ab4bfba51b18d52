"""Placeholder: the doctors' Telegram bot (issue 7)."""

from __future__ import annotations

from fastapi import APIRouter

from web.auth import Auth


def doctor_bot_router(auth: Auth) -> APIRouter:
    return APIRouter(include_in_schema=False)
