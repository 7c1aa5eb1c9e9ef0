"""Notebook apps (ipywidgets controls, HoloViews/Bokeh views): the scenario explorer."""

from ccs_fno.widgets.explorer import ExplorerScenario, ScenarioExplorer
from ccs_fno.widgets.static import external_resources, figure_png, save_figure, show_figure
from ccs_fno.widgets.views import load_extension

__all__ = [
    "ExplorerScenario",
    "ScenarioExplorer",
    "external_resources",
    "figure_png",
    "load_extension",
    "save_figure",
    "show_figure",
]
