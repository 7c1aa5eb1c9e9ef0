"""Plume metrics moved to the library module ``ccs_fno.plume`` (the UQ library needs them without
importing the apps); this name is kept for the existing imports."""

from ccs_fno.plume import PLUME_THRESHOLD, plume_area_m2, plume_extent_m, plume_mask, relative_error

__all__ = ["PLUME_THRESHOLD", "plume_area_m2", "plume_extent_m", "plume_mask", "relative_error"]
