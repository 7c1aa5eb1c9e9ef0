"""The apps' message box above their plots (``Banner``): info, warning or error, in words."""

from __future__ import annotations

import html
from collections.abc import Sequence

LEVEL_COLOURS = {  # background, text
    "info": ("#e8f1fb", "#1f4e79"),
    "warning": ("#fff4e5", "#8a4b00"),
    "error": ("#fdecea", "#b00020"),
}


class Banner:
    """A message box above an app's plots: ``info``, ``warning`` or ``error`` with lines of
    plain text (HTML-escaped), or hidden when there is nothing to say. ``text`` is the plain
    text shown ("" when hidden). With ``height_px`` the banner keeps that height (scrolling a
    long message), so what lies below it never moves."""

    def __init__(self, height_px: int | None = None) -> None:
        import ipywidgets as widgets

        layout = widgets.Layout(width="100%")
        if height_px is not None:  # a fixed height: a longer or shorter message moves nothing below
            layout = widgets.Layout(width="100%", height=f"{height_px}px", overflow="auto")
        self.widget = widgets.HTML(value="", layout=layout)
        self.level: str | None = None
        self.lines: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def show(self, level: str, lines: str | Sequence[str], heading: str = "") -> None:
        """Show ``lines`` (a string or a list) at ``level``; ``heading`` in bold before them."""
        if level not in LEVEL_COLOURS:
            raise ValueError(f"unknown banner level {level!r}; allowed: {list(LEVEL_COLOURS)}")
        lines = (lines,) if isinstance(lines, str) else tuple(lines)
        self.level, self.lines = level, ((heading,) if heading else ()) + lines
        background, colour = LEVEL_COLOURS[level]
        head = f"<b>{html.escape(heading)}</b>" if heading else ""
        if len(lines) > 1:
            body = "<ul style='margin: 2px 0 0 0; padding-left: 18px'>"
            body += "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"
        else:
            body = (" " if head else "") + html.escape(lines[0] if lines else "")
        self.widget.value = (
            f"<div class='ccs-banner ccs-banner-{level}' style='background: {background}; color: {colour}; "
            f"border-left: 4px solid {colour}; padding: 4px 10px; line-height: 1.4'>{head}{body}</div>"
        )

    def hide(self) -> None:
        self.level, self.lines = None, ()
        self.widget.value = ""
