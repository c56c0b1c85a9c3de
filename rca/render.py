"""Human rendering of answers with rich (tables, panels); JSON output lives in ``rca.answer``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

__all__ = ["render_answer"]


def render_answer(console: Console, ans: dict[str, Any]) -> None:
    console.print(Panel.fit(f"[bold]{ans['question']}[/bold]\n{ans['summary']}", title="rca"))
    t = Table(show_lines=True)
    for col in ("#", "root cause", "category", "confidence", "evidence"):
        t.add_column(col, overflow="fold")
    for h in ans["hypotheses"]:
        ev = "\n".join(f"• {e['summary']}" for e in h["evidence"][:5])
        path = " → ".join(h["path"])
        t.add_row(str(h["rank"]), f"{h['root']}\n[dim]{path}[/dim]", h["category"],
                  f"{h['confidence']:.2f}", ev)
    console.print(t)
    if ans["hypotheses"]:
        top = ans["hypotheses"][0]
        if top["checked"]:
            console.print("[dim]checked and normal:[/dim] " + "; ".join(top["checked"][:8]))
        if top["no_data"]:
            console.print("[dim]no data:[/dim] " + "; ".join(top["no_data"][:8]))
    truth = ans.get("truth")
    if truth:
        hit = bool(ans["hypotheses"]) and ans["hypotheses"][0]["root"] == truth["root"] \
            and ans["hypotheses"][0]["category"] == truth["category"]
        mark = "[green]✓ top-1 matches[/green]" if hit else "[yellow]✗ top-1 differs[/yellow]"
        console.print(f"ground truth ({ans.get('scenario')}, seed {ans.get('seed')}): "
                      f"[bold]{truth['root']}[/bold] {truth['category']} since {truth['onset']}  {mark}")
