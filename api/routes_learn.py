"""Learning from feedback over HTTP: the feedback audit trail, the re-ranker's versions
(train, activate, roll back) and dataset exports."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.routes_ops import PROBLEMS
from api.schemas import FeedbackPublic
from api.shape import feedback_public
from rca.apikeys import ApiKey
from rca.errors import BadInput

__all__ = ["router"]

router = APIRouter(prefix="/v1")
ReadKey = Annotated[ApiKey, Depends(require("read"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]


class ModelActivate(BaseModel):
    """Make ``version`` the active re-ranker; ``null`` = the base ranker alone (rollback)."""

    version: int | None = Field(..., ge=1, le=2**31 - 1)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 3}, {"version": None}]})


class ModelTrain(BaseModel):
    holdout: float = Field(0.25, gt=0, lt=1, description="share of labelled incidents held back to judge the version")
    min_labels: int = Field(20, ge=2, le=100_000)
    c: float = Field(1.0, gt=0, le=1e6, description="inverse L2 strength")
    model_config = ConfigDict(extra="forbid")


@router.get("/feedback", response_model=list[FeedbackPublic], tags=["feedback"], responses=PROBLEMS,
            summary="The audit trail: every verdict, oldest first (optionally of one incident)")
async def feedback_trail(request: Request, key: ReadKey,
                         incident_id: Annotated[str | None, Query(max_length=64)] = None,
                         limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[dict]:
    store = request.app.state.rca.store
    return [feedback_public(f) for f in (await run_in_threadpool(store.list_feedback, incident_id))[-limit:]]


def _model_public(row: dict) -> dict:
    return {k: row[k] for k in ("version", "created_at", "kind", "status", "metrics", "activated_at", "note")}


@router.get("/ranker/models", tags=["feedback"], responses=PROBLEMS,
            summary="Learned re-ranker versions, newest first, with their held-back numbers")
async def list_models(request: Request, key: ReadKey) -> list[dict]:
    return [_model_public(r) for r in await run_in_threadpool(request.app.state.rca.store.list_models)]


@router.post("/ranker/train", tags=["feedback"], responses=PROBLEMS,
             summary="Train a version on the labelled incidents; active only if it beats the base on held-back ones")
async def train(request: Request, body: ModelTrain, key: AdminKey) -> dict:
    from rca.learn import train_ranker

    rep = await run_in_threadpool(lambda: train_ranker(request.app.state.rca.store, holdout=body.holdout,
                                                       min_labels=body.min_labels, c=body.c, note=f"api {key.name}"))
    return {"version": rep.version, "activated": rep.activated, "reason": rep.reason, "metrics": dict(rep.metrics),
            "top_features": [list(x) for x in rep.top_features]}


@router.post("/ranker/active", tags=["feedback"], responses=PROBLEMS,
             summary="Activate a version (roll back or forward); null = the base ranker")
async def activate(request: Request, body: ModelActivate, key: AdminKey) -> dict:
    before = await run_in_threadpool(request.app.state.rca.store.activate_model, body.version)
    return {"active": body.version, "previous": before}


@router.get("/export", tags=["feedback"], responses={**PROBLEMS, 200: {"content": {
    "application/zip": {}, "application/x-ndjson": {}}, "description": "the dataset (zip) or one split (JSON lines)"}},
    summary="A redacted dataset from the confirmed incidents: the whole directory as a zip, or one config's split")
async def export(request: Request, key: AdminKey,
                 format: Annotated[Literal["sft", "dpo", "kto", "eval"], Query()],
                 config: Annotated[str | None, Query(max_length=64, description="e.g. sft_messages")] = None,
                 split: Annotated[Literal["train", "validation", "test"] | None, Query()] = None) -> Response:
    from rca.export.run import collect_items, export_dataset
    from rca.export.schema import CONFIGS
    from rca.export.writer import load_split
    from rca.redact import Redactor

    if (config is None) != (split is None):
        raise BadInput("config and split go together", field="config" if config is None else "split",
                       fix="give both (one split as JSON lines) or neither (the whole dataset as a zip)")
    if config is not None and config not in CONFIGS[format]:
        raise BadInput(f"{format} has no config {config!r}", field="config", fix=f"use one of {', '.join(CONFIGS[format])}")
    state = request.app.state.rca
    settings = state.settings

    def build() -> tuple[bytes, str]:
        items = collect_items(state.store)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "export"
            export_dataset(format, out, items, redactor=Redactor(settings.redact_patterns, salt=settings.redact_salt))
            if config is not None:
                rows = load_split(out, config, split)
                return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(), "application/x-ndjson"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(out.rglob("*")):
                    if p.is_file():
                        z.write(p, f"rca-{format}/{p.relative_to(out)}")
            return buf.getvalue(), "application/zip"

    body, media = await run_in_threadpool(build)
    name = f"rca-{format}-{config}-{split}.jsonl" if config else f"rca-{format}.zip"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
