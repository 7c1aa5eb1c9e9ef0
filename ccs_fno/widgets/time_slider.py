"""The apps' time control: a Bokeh slider over report times that swaps frames in the browser.

Scrubbing through time with a kernel round trip per step (input -> kernel -> Bokeh patch ->
repaint, ~90 ms in JupyterLab on a small machine) falls two or three steps behind a key held
down (a step every ~33 ms). ``TimeSlider`` is a Bokeh ``Slider`` in the panels' own document,
so a ``CustomJS`` callback can pick the shown frame in the browser as the slider moves:

- an image panel built with ``frames=time_slider`` (``ImagePanel``) draws its image and note
  through a view (``CDSView`` with an ``IndexFilter``) of its data source. The source holds one
  row (the frame at the slider's time, sent by the kernel: ``ImagePanel.show``) or a row per
  report time (``ImagePanel.show_frames``); with a row per time the browser shows row
  ``slider.value`` itself, with one row it shows that row and the kernel sends the next;
- curve panels built with ``marker_on=time_slider`` draw their time marker from the slider's
  ``source`` (a row per report time) through its ``filter``.

The browser owns the filters once the panels are displayed (Python sets them before): the
callback runs when the slider moves and when a linked source's data change, so frames arriving
after a slider move show the slider's time in the browser, not the one the kernel knew.

The slider's value is the index of a report time (``value``; ``times_days[value]`` in days);
``observe(callback)`` calls ``callback({"old": i, "new": j})`` on every change, from the browser
or from Python, like an ipywidget's ``observe``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from bokeh.models import CDSView, ColumnDataSource, CustomJS, CustomJSTickFormatter, IndexFilter, Slider

# Pick each linked view's row: the slider's time where the source holds a row per report time,
# else its only row. Setting an equal value sends nothing (BokehJS compares).
_APPLY_JS = """
const n = times.length;
for (let k = 0; k < sources.length; k++) {
  const i = sources[k].get_length() === n ? slider.value : 0;
  const now = filters[k].indices;
  if (now === null || now.length !== 1 || now[0] !== i) filters[k].indices = [i];
}
"""


class TimeSlider:
    """A slider over ``times_days`` (report times, days) that starts at the last of them.

    ``slider`` is the Bokeh model to put in the panels' layout; ``source`` (column ``t``) and
    ``filter`` show the time of the slider as one row (e.g. the curves' time marker:
    ``marker_view``). See the module docstring for the frames swapped in the browser.
    """

    def __init__(self, times_days: np.ndarray, title: str = "time", value: int | None = None) -> None:
        times = np.asarray(times_days, dtype=float)
        if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) <= 0):
            raise ValueError(
                f"a time slider needs report times that increase, got {times!r}: pass the "
                "surrogate's times_days"
            )
        self.times_days = times
        n = times.size
        start = n - 1 if value is None else self._check(value)
        self.slider = Slider(
            start=0,
            end=max(n - 1, 1),  # Bokeh needs start < end: one report time is a disabled slider
            step=1,
            value=start,
            title=title,
            disabled=n == 1,
            format=CustomJSTickFormatter(args={"times": times.tolist()}, code="return `${times[tick]} d`;"),
            sizing_mode="stretch_width",
            margin=(0, 24, 0, 24),
            name="time",
        )
        self.source = ColumnDataSource({"t": times})
        self.filter = IndexFilter(indices=[start])
        self._sources: list[ColumnDataSource] = [self.source]
        self._filters: list[IndexFilter] = [self.filter]
        self._apply = CustomJS(code=_APPLY_JS)
        self._set_args()
        self.slider.js_on_change("value", self._apply)
        self._observers: list[Callable[[dict], None]] = []
        self._delivered = start
        self.slider.on_change("value", self._changed)

    def _check(self, value: int) -> int:
        n = self.times_days.size
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
            raise ValueError(
                f"time index {value!r} is not one of the {n} report times: give an integer in 0 ... {n - 1}"
            )
        return int(value)

    def _set_args(self) -> None:
        self._apply.args = {
            "slider": self.slider,
            "times": self.times_days.tolist(),
            "sources": list(self._sources),
            "filters": list(self._filters),
        }

    @property
    def value(self) -> int:
        """The index of the report time shown."""
        return int(self.slider.value)

    @value.setter
    def value(self, index: int) -> None:
        index = self._check(index)
        self.slider.value = index  # the browser's callback moves the linked views
        if self.slider.document is None:  # not displayed: the views' state is set here
            self.filter.indices = [index]

    @property
    def t_days(self) -> float:
        """The report time shown (days)."""
        return float(self.times_days[self.value])

    def marker_view(self) -> CDSView:
        """A view of ``source`` that shows the slider's time (one per renderer)."""
        return CDSView(filter=self.filter)

    def link(self, source: ColumnDataSource) -> IndexFilter:
        """A filter for views of ``source`` that the browser keeps at the slider's time while
        ``source`` holds a row per report time (at row 0 otherwise); set before display."""
        index_filter = IndexFilter(indices=[0])
        self._sources.append(source)
        self._filters.append(index_filter)
        self._set_args()
        source.js_on_change("data", self._apply)
        return index_filter

    def observe(self, callback: Callable[[dict], None]) -> None:
        """Call ``callback({"old": i, "new": j})`` whenever the slider moves."""
        self._observers.append(callback)

    def _changed(self, attr: str, old, new) -> None:
        # jupyter_bokeh invokes the callbacks of a change from the browser a second time
        if new == self._delivered:
            return
        before, self._delivered = self._delivered, int(new)
        for callback in self._observers:
            callback({"old": before, "new": int(new)})
