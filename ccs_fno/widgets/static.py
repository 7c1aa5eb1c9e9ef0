"""Figures that read as they are, offline: an interactive view beside a static rendering.

A notebook executed by papermill and opened later in JupyterLab is *untrusted*: no JavaScript runs,
so Bokeh/Panel outputs show nothing until the notebook is re-run. Every figure of the notebooks and
apps therefore goes through this module:

- ``show_figure(fig)`` displays the interactive figure (a HoloViews object through Panel, or any
  displayable: a Panel object, an ipywidget) and, beside it, a static PNG rendering that needs no
  JavaScript. For a HoloViews object the PNG is drawn by HoloViews' matplotlib backend with the
  figure's Bokeh options carried over (colour maps, colour limits, log axes, inverted depth axis,
  titles, legends); apps whose view is not a HoloViews object pass ``static=`` a matplotlib figure.
- ``save_figure(fig, "out.html")`` writes a self-contained HTML file (BokehJS inline, no CDN, no
  stylesheet or script fetched from anywhere) and the PNG beside it (``out.png``); it refuses to
  write a page that would load anything from outside the file (``external_resources``).
- ``figure_png(fig)`` is the PNG bytes of either kind of figure.

Example (a notebook cell)::

    from ccs_fno.widgets import show_figure, save_figure
    layout = hv.Layout([...])
    show_figure(layout)                          # interactive + static PNG
    save_figure(layout, "figures/gallery.html")  # gallery.html (offline) + gallery.png
"""

from __future__ import annotations

import html
import io
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import holoviews as hv
import matplotlib.figure
import numpy as np
from matplotlib.ticker import FixedLocator, NullFormatter

from ccs_fno.widgets.panels import CurvePanel, ImagePanel

SCREEN_DPI = 100  # PNG resolution in notebooks and saved files (dots per inch of a matplotlib figure)

# Bokeh plot options with the same meaning in HoloViews' matplotlib backend.
_PLOT_OPTIONS = (
    "clim",
    "colorbar",
    "invert_xaxis",
    "invert_yaxis",
    "logx",
    "logy",
    "logz",
    "show_grid",
    "show_legend",
    "legend_position",
    "title",
    "xlim",
    "ylim",
    "xlabel",
    "ylabel",
    "xticks",
    "yticks",
    "clabel",
    "show_title",
)
# Bokeh style options -> matplotlib style options.
_STYLE_OPTIONS = {
    "cmap": "cmap",
    "color": "color",
    "alpha": "alpha",
    "line_width": "linewidth",
    "line_dash": "linestyle",
    "marker": "marker",
    "size": "s",
}
_MARKERS = {"triangle": "^", "inverted_triangle": "v", "circle": "o", "square": "s", "diamond": "D"}
# Anything a page would load: script/img/iframe sources, stylesheet links, CSS url() and @import
# (looked for outside script bodies: inline BokehJS is full of URL-like strings it never fetches).
_RESOURCE_PATTERNS = (
    re.compile(r"""<(?:script|img|iframe|source|embed)\b[^>]*?\bsrc\s*=\s*["']?([^"'\s>]+)""", re.I),
    re.compile(r"""<link\b[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)""", re.I),
    re.compile(r"""url\(\s*["']?([^"')\s]+)""", re.I),
    re.compile(r"""@import\s+["']([^"']+)""", re.I),
)
_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>)(.*?)</script>", re.I | re.S)
# Inside scripts: stylesheets a Bokeh document imports (ImportedStyleSheet urls in its JSON).
_DOCUMENT_URL = re.compile(r"""\\?"url\\?"\s*:\s*\\?"((?:https?:)?//[^"\\]+)""")
_LOCAL_SCHEMES = ("data:", "blob:", "#", "about:")


def external_resources(page: str) -> list[str]:
    """The resources (scripts, stylesheets, images, fonts) that the HTML ``page`` would fetch from
    outside itself: URLs and relative paths, in order, without repeats. ``[]`` for a self-contained
    page. Links a reader may click (``<a href>``) are no resources."""
    markup = _SCRIPT_BODY.sub(lambda m: m.group(1) + "</script>", page)
    urls = [m.group(1) for pattern in _RESOURCE_PATTERNS for m in pattern.finditer(markup)]
    urls += [m.group(1) for body in _SCRIPT_BODY.finditer(page) for m in _DOCUMENT_URL.finditer(body[2])]
    found: list[str] = []
    for url in urls:
        if not url.startswith(_LOCAL_SCHEMES) and url not in found:
            found.append(url)
    return found


def _is_holoviews(figure: Any) -> bool:
    return isinstance(figure, hv.core.Dimensioned)


def _matplotlib_options(element: Any) -> dict[str, Any]:
    """The element's Bokeh options that matplotlib understands, under matplotlib's names."""
    plot = hv.Store.lookup_options("bokeh", element, "plot").kwargs
    style = hv.Store.lookup_options("bokeh", element, "style").kwargs
    options = {k: plot[k] for k in _PLOT_OPTIONS if k in plot}
    if plot.get("cticks") is not None:
        options["cbar_ticks"] = plot["cticks"]
    for bokeh_name, mpl_name in _STYLE_OPTIONS.items():
        value = style.get(bokeh_name)
        if value is None or isinstance(value, hv.Cycle | hv.Palette):
            continue
        if bokeh_name == "marker":
            value = _MARKERS.get(value, value)
        elif bokeh_name == "size" and isinstance(value, int | float):
            value = float(value) ** 2  # Bokeh: diameter in px; matplotlib: area in points²
        options[mpl_name] = value
    width = plot.get("frame_width", plot.get("width"))
    height = plot.get("frame_height", plot.get("height"))
    if width and height and not isinstance(element, hv.Raster):  # images keep equal aspect
        # HoloViews' matplotlib backend draws a log-y axis ln(10) times too wide (1.23): compensate
        options["aspect"] = width / height / (np.log(10) if options.get("logy") else 1.0)
    return options


def _with_matplotlib_options(figure: Any) -> Any:
    """A copy of the HoloViews ``figure`` whose parts carry their Bokeh options for matplotlib."""
    if isinstance(figure, hv.DynamicMap):
        raise TypeError(
            "a DynamicMap has no static rendering of its own: pass show_figure/save_figure a "
            "`static=` matplotlib figure of what it shows now"
        )
    # a copy, to leave the caller's options alone (an Empty panel has nothing to copy)
    figure = figure.map(lambda part: part.clone(), lambda part: not isinstance(part, hv.Empty))
    for part in figure.traverse(lambda part: part):
        options = _matplotlib_options(part)
        if isinstance(part, hv.Layout):
            options["sublabel_format"] = ""  # no "A", "B", ... panel letters
        if options:
            part.opts(backend="matplotlib", clone=False, **options)
    return figure


def to_matplotlib(figure: Any) -> matplotlib.figure.Figure:
    """A HoloViews object drawn by HoloViews' matplotlib backend, its Bokeh options carried over;
    a matplotlib figure is returned as it is."""
    if isinstance(figure, matplotlib.figure.Figure):
        return figure
    if not _is_holoviews(figure):
        raise TypeError(
            f"no static rendering for a {type(figure).__name__}: pass a HoloViews object, or a "
            "matplotlib figure as `static=`"
        )
    renderer = hv.renderer("matplotlib")  # loads the backend; the current backend stays Bokeh
    fig = renderer.get_plot(_with_matplotlib_options(figure)).state
    for ax in fig.axes:  # log axes (colour bars too) with given ticks: label those ticks only
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log" and isinstance(axis.get_major_locator(), FixedLocator):
                axis.set_minor_formatter(NullFormatter())
    return fig


def figure_png(figure: Any, dpi: int = SCREEN_DPI) -> bytes:
    """PNG bytes of a HoloViews object (see ``to_matplotlib``) or of a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig = to_matplotlib(figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    if fig is not figure:
        plt.close(fig)  # drawn by HoloViews through pyplot: do not let the notebook show it again
    return buffer.getvalue()


def show_figure(figure: Any, static: Any = None, *, dpi: int = SCREEN_DPI) -> None:
    """Display ``figure`` interactively and, below it, its static PNG rendering (of ``static``
    when given: a matplotlib figure or HoloViews object), readable with no JavaScript."""
    import panel as pn
    from IPython.display import Image, display

    png = figure_png(figure if static is None else static, dpi)
    display(pn.panel(figure) if _is_holoviews(figure) else figure)
    display(Image(data=png, format="png"), metadata={"ccs_fno": {"static_of": type(figure).__name__}})


def standalone_html(figure: Any, title: str = "") -> str:
    """A self-contained HTML page of a HoloViews object or Bokeh model: BokehJS inline, nothing
    fetched from anywhere (Bokeh's own ``file_html`` also lists scripts of every model class
    imported, e.g. Panel's, which a saved plot does not use)."""
    from bokeh.embed import components
    from bokeh.model import Model
    from bokeh.resources import Resources

    model = hv.render(figure, backend="bokeh") if _is_holoviews(figure) else figure
    if not isinstance(model, Model):
        raise TypeError(
            f"cannot save a {type(model).__name__} as HTML: pass a HoloViews object or Bokeh model"
        )
    script, div = components(model)
    resources = Resources(mode="inline", components=["bokeh", "bokeh-gl", "bokeh-widgets"])
    js = "\n".join(f'<script type="text/javascript">\n{code}\n</script>' for code in resources.js_raw)
    css = "\n".join(f"<style>\n{code}\n</style>" for code in resources.css_raw)
    head = f'<meta charset="utf-8">\n<title>{html.escape(title or "figure")}</title>\n{css}\n{js}'
    body = f"{div}\n{script}"
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file: a reader never sees half a file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)  # as a plain open() would (the temporary file is private)
    os.replace(tmp.name, path)


def save_figure(
    figure: Any, path: str | os.PathLike, static: Any = None, *, dpi: int = SCREEN_DPI
) -> list[Path]:
    """Save ``figure`` for offline reading; return the files written.

    ``path`` ending in ``.html``: a self-contained page of the interactive figure (HoloViews object
    or Bokeh model) and its static PNG beside it (same name, ``.png``; of ``static`` when given).
    ``path`` ending in ``.png``: only the PNG. Both are rendered before anything is written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".png"):
        raise ValueError(f"cannot save a figure as {path.name!r}: the name must end in .html or .png")
    png = figure_png(figure if static is None else static, dpi)
    outputs = {path.with_suffix(".png"): png}
    if suffix == ".html":
        page = standalone_html(figure, title=path.stem)
        leaks = external_resources(page)
        if leaks:  # a guard against a Bokeh/Panel change: never write a page that breaks offline
            raise RuntimeError(f"{path.name} would load {leaks}; nothing written")
        outputs = {path: page.encode("utf-8"), **outputs}
    path.parent.mkdir(parents=True, exist_ok=True)
    for out, data in outputs.items():
        _write_atomic(out, data)
    return list(outputs)


def main(argv: list[str] | None = None) -> int:
    """Check that every HTML figure under the directories ``argv`` loads nothing from outside
    itself; return 1, naming the files and what they would load, if one does (or none is there).
    ``make demo`` runs it on outputs/figures."""
    import argparse

    parser = argparse.ArgumentParser(description="check that saved HTML figures are self-contained")
    parser.add_argument("dirs", nargs="+", type=Path)
    pages = sorted(page for d in parser.parse_args(argv).dirs for page in d.rglob("*.html"))
    bad = {page: external_resources(page.read_text(errors="replace")) for page in pages}
    bad = {page: leaks for page, leaks in bad.items() if leaks}
    for page, leaks in bad.items():
        print(f"{page}: would load {', '.join(leaks)}")
    print(f"{len(pages) - len(bad)}/{len(pages)} HTML figures self-contained (nothing fetched offline)")
    return 1 if bad or not pages else 0


# -- the apps' panels as a matplotlib figure (ccs_fno/widgets/panels.py) ---------------------------

_MATPLOTLIB_PALETTES = {
    "Viridis256": "viridis",
    "Cividis256": "cividis",
    "RdBu11": "RdBu_r",
    "Magma256": "magma",
}
_MATPLOTLIB_DASHES = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-."}
_BOKEH_DASHES = {
    (): "solid",
    (6,): "dashed",
    (2, 4): "dotted",
    (6, 4, 2, 4): "dashdot",
}  # as Bokeh stores them


def _draw_image(ax, panel: ImagePanel) -> None:
    from matplotlib.colors import LogNorm, Normalize

    f = panel.figure
    width_m, depth_m = f.x_range.end, f.y_range.start
    ax.set_xlim(0.0, width_m)
    ax.set_ylim(depth_m, 0.0)  # depth down
    ax.set_aspect("equal")
    if panel.showing_placeholder:
        ax.text(
            width_m / 2,
            depth_m / 2,
            panel.placeholder_text,
            ha="center",
            va="center",
            color="#555555",
            wrap=True,
        )
    else:
        norm_type = LogNorm if panel.scale.log else Normalize
        norm = norm_type(vmin=panel.mapper.low, vmax=panel.mapper.high)
        cmap = _MATPLOTLIB_PALETTES.get(panel.scale.palette, "viridis")
        image = ax.imshow(
            panel.field,
            extent=(0.0, width_m, depth_m, 0.0),
            cmap=cmap,
            norm=norm,
            origin="upper",
        )
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label(panel.scale.label)
        if panel.scale.log:
            from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

            bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            bar.ax.yaxis.set_major_formatter(ScalarFormatter())
            bar.ax.yaxis.set_minor_formatter(NullFormatter())
    if panel.wells_source is not None:
        data = panel.wells_source.data
        ax.scatter(data["x"], data["depth"], c=data["colour"], marker="^", s=60, edgecolors="white", zorder=3)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("depth (m)")


def _draw_curves(ax, panel: CurvePanel) -> None:
    for name in panel.drawn():
        glyph = panel.renderers[name].glyph
        if name in panel.bands:
            x, lower, upper = panel.band_data(name)
            ax.fill_between(x, lower, upper, color=glyph.fill_color, alpha=0.25, label=name)
            continue
        x, y = panel.line_data(name)
        pattern = glyph.line_dash
        name_ = pattern if isinstance(pattern, str) else _BOKEH_DASHES.get(tuple(pattern), "dashed")
        dash = _MATPLOTLIB_DASHES.get(name_, "--")
        ax.plot(
            x,
            y,
            color=glyph.line_color,
            linestyle=dash,
            linewidth=glyph.line_width,
            label=name,
        )
    if panel.marker_at is not None:
        ax.axvline(panel.marker_at, color="grey", linestyle="--", linewidth=1)
    if panel.drawn():
        ax.legend(loc="upper left", fontsize="small")
    ax.set_xlabel(panel.figure.xaxis[0].axis_label)
    ax.set_ylabel(panel.figure.yaxis[0].axis_label)
    ax.grid(alpha=0.3)


def static_figure(rows: Sequence[Sequence[ImagePanel | CurvePanel]]):
    """The panels as they are now, drawn by matplotlib from the same data sources the browser
    draws (a figure for ``ccs_fno.widgets.static.show_figure(..., static=)``: readable in a
    notebook opened without a kernel or JavaScript)."""
    n_cols = max(len(r) for r in rows)
    figure = matplotlib.figure.Figure(figsize=(4.2 * n_cols, 3.6 * len(rows)), layout="constrained")
    grid = figure.add_gridspec(len(rows), n_cols)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            ax = figure.add_subplot(grid[i, j])
            note = panel.note_text if isinstance(panel, ImagePanel) and not panel.showing_placeholder else ""
            ax.set_title(f"{panel.figure.title.text} {note}".strip(), fontsize="medium")
            if isinstance(panel, ImagePanel):
                _draw_image(ax, panel)
            else:
                _draw_curves(ax, panel)
    return figure
