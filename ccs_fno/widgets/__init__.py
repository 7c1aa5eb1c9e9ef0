"""Notebook apps (ipywidgets controls, HoloViews/Bokeh views): the scenario explorer."""

from ccs_fno.widgets.explorer import ExplorerScenario, ScenarioExplorer
from ccs_fno.widgets.views import load_extension

__all__ = ["ExplorerScenario", "ScenarioExplorer", "load_extension"]
