"""Data sources several Bokeh panels share, changed in batches: one event per update, not one
per panel (``SharedSource``; used by ``panels.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from bokeh.models import ColumnDataSource


def _same(old, new) -> bool:
    """Whether column values ``new`` are those already in the source (arrays: the same object,
    or equal 1-D numbers; no element-wise comparison of images)."""
    if old is new:
        return True
    if len(old) != len(new):
        return False
    if isinstance(old, np.ndarray) and isinstance(new, np.ndarray) and old.ndim == new.ndim == 1:
        return old.dtype == new.dtype and np.array_equal(old, new, equal_nan=old.dtype.kind == "f")
    for a, b in zip(old, new, strict=True):
        if a is b:
            continue
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return False
        if a != b and not (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)):
            return False
    return True


class SharedSource:
    """One ``ColumnDataSource`` that several panels draw from, changed in batches.

    Each change of a Bokeh data source is one document event, and ``jupyter_bokeh`` sends every
    event to the browser as messages of its own, which BokehJS applies and repaints one by one
    (~10 ms each in JupyterLab). Panels that change together (the explorer's images, the notes on
    them and the time marker on its curves) share one source: what an update sets inside
    ``batch()`` leaves as one event, a patch of the columns that changed (or new ``data`` when
    their length changes). Outside a batch, ``set`` sends at once. Columns hold one value per row;
    panels that share a source share its rows (e.g. one image per column, or curves over the same
    x values).
    """

    def __init__(self) -> None:
        self.source = ColumnDataSource({})
        self._pending: dict[str, object] | None = None
        self._depth = 0
        self._numbers: set[str] = set()  # 1-D number columns, sent as JSON lists

    def add(self, name: str, values) -> str:
        """Add column ``name`` with ``values`` (before the panels are displayed); returns ``name``."""
        if name in self.source.data:
            raise ValueError(
                f"column {name!r} is already in this shared source: give each panel its own name"
            )
        self.source.data[name] = values
        return name

    def get(self, name: str):
        """Column ``name`` as it will be after the current batch (as sent, outside one)."""
        if self._pending is not None and name in self._pending:
            return self._pending[name]
        values = self.source.data[name]
        return np.asarray(values, dtype=float) if name in self._numbers else values

    def set(self, name: str, values) -> None:
        """Replace column ``name`` (sent when the outermost batch ends; at once outside one)."""
        if name not in self.source.data:
            raise ValueError(f"unknown column {name!r}; this source holds {list(self.source.data)}")
        with self.batch():
            self._pending[name] = values

    @contextmanager
    def batch(self) -> Iterator[SharedSource]:
        """Collect the ``set`` calls made inside (nested batches join the outermost one)."""
        if self._depth == 0:
            self._pending = {}
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                pending, self._pending = self._pending, None
                self._send(pending)

    def _send(self, changes: dict[str, object]) -> None:
        data = self.source.data
        changes = {k: v for k, v in changes.items() if not _same(self.get(k), v)}
        if not changes:
            return
        # 1-D number columns (curves over time: tens of values) leave as JSON lists: jupyter_bokeh
        # sends every binary buffer as two more messages, which JupyterLab handles one by one
        for k, v in list(changes.items()):
            if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "fiu":
                changes[k] = v.astype(float).tolist()
                self._numbers.add(k)
            else:
                self._numbers.discard(k)
        rows = len(next(iter(data.values())))
        patchable = rows == 1 or all(k in self._numbers for k in changes)
        if rows and patchable and all(len(v) == rows for v in changes.values()):
            # one patch event (a row, or whole number columns: lists of our own, patched in place);
            # columns of several images or texts are sent whole (a new ``data``)
            self.source.patch(
                {k: [(0, v[0])] if rows == 1 else [(slice(0, rows), v)] for k, v in changes.items()}
            )
        else:  # new lengths: one new ``data``; columns not given are reset to NaN of the new length
            copies = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in changes.items()}
            rows = len(next(iter(copies.values())))
            if any(len(v) != rows for v in copies.values()):
                lengths = {k: len(v) for k, v in copies.items()}
                raise ValueError(f"columns of one source must have one length, got {lengths}")
            rest = {
                k: v if len(v) == rows else [float("nan")] * rows for k, v in data.items() if k not in copies
            }
            self._numbers.update(k for k, v in rest.items() if len(data[k]) != rows)
            self.source.data = {**rest, **copies}
