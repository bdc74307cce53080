"""Published results, rerun with steplab: each writes its figure and table and checks its claims.

>>> from steplab import reproductions
>>> list(reproductions.REPRODUCTIONS)  # doctest: +NORMALIZE_WHITESPACE
['mnist1d', 'kingma_ba_logreg', 'deepobs_quadratic', 'wilson_toy', 'bias_correction',
 'reddi_amsgrad']
>>> result = reproductions.run("wilson_toy", "out/", quick=True)  # doctest: +SKIP
>>> result.claims  # doctest: +SKIP

One module per reproduction; each states its source, its setup and where it differs from
the original, and registers ``run(out, *, quick, seeds, progress) -> Result``.
``steplab reproduce NAME`` runs one from the command line. Importing this package also
registers every reproduction in :mod:`steplab.experiments` as ``repro_NAME``.
"""

# Importing the modules registers them, in the order of the issue.
from steplab.reproductions import (  # noqa: F401, I001 - the order of the issue
    mnist1d_baselines,
    kingma_ba_logreg,
    deepobs_quadratic,
    wilson_toy,
    bias_correction,
    reddi_amsgrad,
)
from steplab.reproductions._common import Result
from steplab.reproductions.registry import REPRODUCTIONS, Reproduction, get, reproduction, run

__all__ = ["REPRODUCTIONS", "Reproduction", "Result", "get", "reproduction", "run"]


def _register_experiments() -> None:
    """Make every reproduction an experiment ``repro_NAME`` of :mod:`steplab.experiments`,
    so ``steplab list`` shows it and the experiments' runner can run it."""
    from steplab.experiments import registry as experiments
    from steplab.viz.report import FigureEntry

    for name, entry in REPRODUCTIONS.items():
        key = f"repro_{name}"
        if key in experiments.EXPERIMENTS:
            continue

        def run_experiment(out, quick: bool = False, _name=name, _key=key):
            result = run(_name, out, quick=quick)
            figures = [FigureEntry(f.name, result.title, result.source) for f in result.figures]
            return experiments.Report(_key, figures=figures, claims=result.claims, data=result)

        experiments.register(key, f"reproduction: {entry.title}")(run_experiment)


_register_experiments()
