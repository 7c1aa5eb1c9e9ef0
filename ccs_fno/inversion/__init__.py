"""Permeability inversion through the surrogate: observations, priors, inversion, verification.

* ``observations``: the observations Dataset schema, designs, synthesis from a simulation, files;
* ``operator``: saturation -> observed data (time interpolation, wells, smoothed snapshots);
* ``prior``: prior ensembles from ``data_gen.scenarios`` and their principal components;
* ``parameterisations`` / ``optimisers``: registries of what is inverted and how;
* ``invert``: the inversion, its result Dataset and progress/cancel hooks;
* ``verify``: simulator confirmation and the quality measures.
"""

from ccs_fno.inversion.invert import (
    InversionConfig,
    InversionProblem,
    InversionProgress,
    invert,
    load_prior_for,
    save_result,
)
from ccs_fno.inversion.observations import (
    MonitoringWells,
    ObservationDesign,
    ObservationsError,
    Snapshots,
    load_observations,
    observations_from_csv,
    save_observations,
    simulate_truth,
    synthesize_observations,
    truth_from_store,
    validate_observations,
)
from ccs_fno.inversion.operator import ObservationOperator
from ccs_fno.inversion.optimisers import inversion_optimizer_names, register_inversion_optimizer
from ccs_fno.inversion.parameterisations import (
    parameterisation_names,
    register_parameterisation,
    tikhonov_gradient,
    total_variation,
)
from ccs_fno.inversion.prior import PriorEnsemble, PriorModes, draw_prior
from ccs_fno.inversion.verify import (
    inversion_report,
    log_permeability_rel_l2,
    permeability_snr_db,
    plume_rel_l2,
    verify,
)

__all__ = [
    "InversionConfig",
    "InversionProblem",
    "InversionProgress",
    "MonitoringWells",
    "ObservationDesign",
    "ObservationOperator",
    "ObservationsError",
    "PriorEnsemble",
    "PriorModes",
    "Snapshots",
    "draw_prior",
    "inversion_optimizer_names",
    "inversion_report",
    "invert",
    "load_observations",
    "load_prior_for",
    "log_permeability_rel_l2",
    "observations_from_csv",
    "parameterisation_names",
    "permeability_snr_db",
    "plume_rel_l2",
    "register_inversion_optimizer",
    "register_parameterisation",
    "save_observations",
    "save_result",
    "simulate_truth",
    "synthesize_observations",
    "tikhonov_gradient",
    "total_variation",
    "truth_from_store",
    "validate_observations",
    "verify",
]
