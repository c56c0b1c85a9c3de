"""``rca logs parse FILE --out X.csv``: raw log file -> loghub's structured CSV layout.

One row per input line: ``LineId`` (from 1), ``Content`` (the message after the generic
header split, ``models.log_header.split_header``), ``EventId`` (stable template id, a hash of
the template text) and ``EventTemplate`` (``<*>`` for parameters, as loghub writes it). One
miner configuration for every file; nothing is learned per log type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from models.log_header import split_header
from models.log_templates import LogTemplateMiner, template_id
from rca.errors import BadInput

__all__ = ["parse_log_file", "parse_lines"]


def parse_lines(lines: list[str]) -> pd.DataFrame:
    """The structured frame (``LineId, Content, EventId, EventTemplate``) of raw lines."""
    content = [split_header(line)[1] for line in lines]
    templates = LogTemplateMiner().fit_transform(content)
    return pd.DataFrame({
        "LineId": range(1, len(lines) + 1),
        "Content": content,
        "EventId": [template_id(t) for t in templates],
        "EventTemplate": templates,
    })


def parse_log_file(path: Path, out: Path) -> dict[str, Any]:
    """Parse ``path`` (one record per line) and write the structured CSV to ``out``."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise BadInput(f"{path} does not exist", field="FILE", fix="pass a log file")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    frame = parse_lines(lines)
    if out.parent and not out.parent.exists():
        raise BadInput(f"folder {out.parent} does not exist", field="--out", fix="create it or pick another path")
    frame.to_csv(out, index=False)
    return {"lines": len(frame), "templates": int(frame["EventId"].nunique()), "out": str(out)}
