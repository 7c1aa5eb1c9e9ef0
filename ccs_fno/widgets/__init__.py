"""Notebook apps (ipywidgets controls, HoloViews/Bokeh views): the scenario explorer, the inversion app."""

from ccs_fno.widgets.explorer import ScenarioExplorer
from ccs_fno.widgets.inversion_app import InversionApp
from ccs_fno.widgets.static import external_resources, figure_png, save_figure, show_figure
from ccs_fno.widgets.uq_app import UncertaintyApp
from ccs_fno.widgets.views import load_extension

__all__ = [
    "InversionApp",
    "ScenarioExplorer",
    "UncertaintyApp",
    "external_resources",
    "figure_png",
    "load_extension",
    "save_figure",
    "show_figure",
]
