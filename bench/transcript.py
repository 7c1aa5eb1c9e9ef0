"""What a bench prints, kept for its ``--out`` file."""

from __future__ import annotations


class Transcript:
    """Prints each line as it comes and keeps it for ``--out``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)
