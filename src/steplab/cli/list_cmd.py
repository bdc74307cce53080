"""``steplab list``: the optimizers (with presets), problems and experiments by name."""

from __future__ import annotations

WHAT = ("optimizers", "problems", "experiments")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list optimizers, problems and experiments",
        description="List what steplab knows by name: optimizers (with their presets and "
        "hyperparameters), problems and experiments.",
    )
    parser.add_argument("what", nargs="?", choices=WHAT, help="only this kind (default: all)")
    parser.set_defaults(func=main)


def optimizers_text() -> str:
    import steplab as sl

    lines = []
    for name, cls in sl.OPTIMIZERS.items():
        presets = "@" + ", @".join(["seed", *cls.PRESETS])
        params = ", ".join(
            f"{k}={f.default:g}"
            if not isinstance(f.default, bool)
            else f"{k}={str(f.default).lower()}"
            for k, f in cls.hyperparameters().items()
        )
        lines.append(f"  {name:<9} {params}\n  {'':<9} presets: {presets}")
    return "\n".join(lines)


def problems_text() -> str:
    from steplab import problems

    return "\n".join("  " + line for line in problems.describe().splitlines())


def experiments_text() -> str:
    from steplab import experiments

    width = max(map(len, experiments.EXPERIMENTS))
    return "\n".join(
        f"  {n:<{width}}  {experiments.get(n).description}" for n in experiments.names()
    )


def main(args) -> int:
    sections = {
        "optimizers": optimizers_text,
        "problems": problems_text,
        "experiments": experiments_text,
    }
    chosen = [args.what] if args.what else list(WHAT)
    for i, what in enumerate(chosen):
        if len(chosen) > 1:
            print(("\n" if i else "") + what.capitalize() + ":")
        print(sections[what]())
    if args.what in (None, "optimizers"):
        print("\nName an optimizer as NAME[@PRESET][:KEY=VALUE,...], e.g. adam@torch:lr=0.01")
        print("lr may be a schedule, e.g. 'adam:lr=cosine(0.01,1000)' (see steplab run --help)")
    return 0
