"""Draw docs/img/matrix_*.png: python tools/matrix_figures.py [out folder, default docs/img]."""

from __future__ import annotations

import sys
from pathlib import Path

from steplab.experiments import matrix
from steplab.viz import save
from steplab.viz.matrix import all_figures


def main(out: str = "docs/img") -> None:
    data = {
        "muon": matrix.muon_singular_values(),
        "adafactor": matrix.adafactor_moments(),
        "race": matrix.preconditioned_race(),
    }
    print("chosen step sizes:", data["race"]["lr"])
    print("final losses:", {k: float(v[-1]) for k, v in data["race"]["curves"].items()})
    for stem, fig in all_figures(data).items():
        print(save(fig, Path(out) / stem)[0])


if __name__ == "__main__":
    main(*sys.argv[1:])
