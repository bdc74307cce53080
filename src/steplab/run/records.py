"""What a run leaves behind: its per-step :class:`History`, the :class:`Run` and tables.

Everything exports to CSV and JSON together with the exact configuration, the seeds and
the versions of Python, NumPy and steplab, so a figure can always be traced back.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import operator
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab import _plugins
from steplab._io import atomic_write, write_text

STATUSES = {
    "max_steps": "the step or epoch budget was used up",
    "converged": "gradient norm <= gtol, or the loss moved by <= ftol over the last `window` steps",
    "target_reached": "the loss fell to target_loss or below",
    "time_budget": "the wall-time budget (time_budget seconds) ran out",
    "diverged": "loss or gradient became NaN/inf, or the loss exceeded the divergence threshold",
    "interrupted": "stopped by Ctrl+C (KeyboardInterrupt); the run holds what was computed",
}


def versions() -> dict[str, str]:
    """Versions that decide the numbers: Python, NumPy, steplab."""
    import steplab

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "steplab": getattr(steplab, "__version__", "unknown"),
    }


_PLAIN = {int, str, bool, type(None)}  # what JSON takes as it is


def _jsonable(value):
    """Plain Python for JSON: arrays to lists, NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        kinds = set(map(type, value))  # a long list of plain values (a sweep's grid) as is
        if kinds <= _PLAIN or (kinds == {float} and all(map(math.isfinite, value))):
            return list(value)
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        # JSON has no NaN or infinity. NaN ("no value") becomes null; ±inf become the
        # strings "Infinity"/"-Infinity", which float() and JavaScript's Number() read back,
        # so a target of -inf never reads back as "unset".
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class History:
    """Per-step records of one run: a mapping column name → NumPy array (one entry per row).

    Row ``t`` describes the state after ``t`` optimizer steps: ``x`` (the parameters, low
    dimensions only), ``loss`` and ``grad_norm`` of the (minibatch) gradient evaluated at
    ``x``, ``step_size`` the per-coordinate effective step size of the step that *produced*
    ``x`` (NaN in row 0), ``time`` seconds since the start. Data problems add ``epoch`` and,
    every ``eval_every`` steps (NaN elsewhere), full ``train_loss`` and validation metrics.
    """

    def __init__(self, columns: dict[str, np.ndarray]):
        self.columns = columns

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns are {', '.join(self.columns)}")
        return self.columns[name]

    def __contains__(self, name) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return len(self.columns["step"])

    def keys(self):
        return self.columns.keys()

    def __repr__(self) -> str:
        return f"History({len(self)} rows: {', '.join(self.columns)})"

    def flat_columns(self) -> dict[str, np.ndarray]:
        """Columns with 2-D entries (``x``, ``step_size``) split into ``x_0``, ``x_1``, …"""
        flat = {}
        for name, values in self.columns.items():
            if values.ndim == 2:
                for j in range(values.shape[1]):
                    flat[f"{name}_{j}"] = values[:, j]
            else:
                flat[name] = values
        return flat

    def to_csv(self, path, metadata: dict | None = None) -> Path:
        """Write one row per step; ``metadata`` goes first as ``# key: json`` comment lines
        (read back with e.g. ``pandas.read_csv(path, comment="#")``)."""
        path = Path(path)
        flat = self.flat_columns()
        with atomic_write(path, "w", newline="") as handle:
            for key, value in (metadata or {}).items():
                handle.write(f"# {key}: {json.dumps(_jsonable(value))}\n")
            writer = csv.writer(handle)
            writer.writerow(flat)
            for i in range(len(self)):
                writer.writerow([_csv_cell(flat[name][i]) for name in flat])
        return path


def _csv_cell(value):
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # repr round-trips every float exactly
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class Run:
    """The result of one run of :func:`steplab.minimize`.

    ``x``: final parameters (for a diverged run, the last finite point); ``status``: one of
    :data:`STATUSES`; ``steps``: optimizer steps taken; ``history``: a :class:`History`;
    ``metrics``: full-data metrics at ``x`` (train/val/test for ML problems).
    """

    x: np.ndarray
    status: str
    history: History
    steps: int
    epochs: float | None
    wall_time: float
    seed: int
    final_loss: float
    best_loss: float
    metrics: dict = field(default_factory=dict)
    optimizer: dict = field(default_factory=dict)  # name and this run's hyperparameters
    problem: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # the arguments of minimize
    versions: dict = field(default_factory=versions)

    def __repr__(self) -> str:
        return (
            f"Run({self.problem.get('name')}, {self.label()}, seed={self.seed}: "
            f"{self.status} after {self.steps} steps, loss {self.final_loss:.6g})"
        )

    def label(self) -> str:
        """The optimizer and the hyperparameters that differ from its defaults in the CLI's
        spec syntax, e.g. ``"adam:lr=0.1"``: what tells apart the runs of one call with
        array hyperparameters (and a figure's legend entry, "Adam (lr=0.1)")."""
        import steplab as sl

        name = self.optimizer.get("name", "?")
        try:
            defaults = sl.make(name).config()
        except (ValueError, KeyError, TypeError):
            defaults = {}
        changed = [
            f"{k}={_short(v)}"
            for k, v in self.optimizer.items()
            if k != "name" and (k not in defaults or defaults[k] != v)
        ]
        return f"{name}:{','.join(changed)}" if changed else str(name)

    def plot(self, ax=None, *, y: str = "loss", x: str = "step"):
        """Draw this run's ``y`` (default: loss, log scale when positive) against ``x``
        into ``ax``, or into a new figure; returns the figure (shown inline in a notebook).
        (``steplab.viz.run_figure`` draws it; run never imports viz.)"""
        return _draw_runs({self.label(): self}, ax=ax, y=y, x=x)

    def summary(self) -> dict:
        """One flat row for a results table."""
        row = {
            "problem": self.problem.get("name"),
            "optimizer": self.optimizer.get("name"),
            **{k: v for k, v in self.optimizer.items() if k not in ("name", "nonfinite")},
            "seed": self.seed,
            "status": self.status,
            "steps": self.steps,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
            "best_loss": self.best_loss,
            "time": self.wall_time,
        }
        row.update({k: v for k, v in self.metrics.items() if np.ndim(v) == 0 and k != "loss"})
        return row

    def metadata(self) -> dict:
        """Configuration, seed, versions and outcome: everything needed to reproduce the run."""
        return {
            "problem": self.problem,
            "optimizer": self.optimizer,
            "seed": self.seed,
            "config": self.config,
            "versions": self.versions,
            "status": self.status,
            "steps": self.steps,
            "final_loss": self.final_loss,
            "metrics": self.metrics,
        }

    def to_csv(self, path) -> Path:
        """The history as CSV, preceded by the metadata as ``#`` comment lines."""
        return self.history.to_csv(path, self.metadata())

    def to_dict(self) -> dict:
        """Metadata, final ``x`` and the full history as JSON-ready Python objects."""
        return _jsonable(
            {**self.metadata(), "x": self.x, "history": dict(self.history.flat_columns())}
        )

    def to_json(self, path=None) -> str:
        """The run as JSON text; also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            write_text(path, text)
        return text


def _short(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


class Table(list):
    """A tidy results table: a list of dicts (one per run), with CSV/JSON export.

    Printed, it is a text table of the columns that differ between rows, with the
    columns every row shares listed once above it; ``to_pandas()`` gives a DataFrame.
    """

    MAX_ROWS = 20  # printed: the first and last ten rows of a longer table

    @classmethod
    def from_blocks(cls, blocks) -> Table:
        """A table of the rows of ``blocks`` in order (each a list of row dicts or a
        :class:`Columns`), equal to ``Table(rows)``; from :class:`Columns`, no row dict is
        built until one is asked for (``len``, ``columns`` and ``column`` never build
        them). So a sweep of 10⁵ trials hands back its table without 10⁵ dicts."""
        blocks = [block for block in blocks if len(block)]
        if all(isinstance(block, list) for block in blocks):
            return cls(itertools.chain.from_iterable(blocks))
        table = _LazyTable()
        table.__dict__["_blocks"] = blocks
        table.__dict__["_count"] = sum(map(len, blocks))
        return table

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return f"Table({len(self)} rows)\n{self.text()}" if self else "Table(0 rows)"

    def _split_columns(self) -> tuple[list[str], dict]:
        """(columns that vary, {column: value} shared by every row)."""
        varying, shared = [], {}
        for name in self.columns:
            values = [_short(v) for v in self.column(name)]
            if len(self) > 1 and len(set(values)) == 1:
                shared[name] = values[0]
            else:
                varying.append(name)
        return varying, shared

    def text(self) -> str:
        """The table as aligned text (what ``print(table)`` shows)."""
        if not self:
            return "(no rows)"
        columns, shared = self._split_columns()
        rows = list(self)
        skipped = 0
        if len(rows) > self.MAX_ROWS:
            half = self.MAX_ROWS // 2
            skipped = len(rows) - 2 * half
            rows = rows[:half] + rows[-half:]
        cells = [["—" if r.get(c) is None else _short(r.get(c)) for c in columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
        lines = []
        if shared:
            lines.append("all rows: " + ", ".join(f"{k}={v}" for k, v in shared.items()))
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        if skipped:
            half = self.MAX_ROWS // 2
            body = body[:half] + [f"… {skipped} more rows …"] + body[half:]
        return "\n".join(lines + body)

    def _repr_html_(self) -> str:  # a notebook shows the table as HTML
        import html

        columns, shared = self._split_columns()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape('—' if r.get(c) is None else _short(r.get(c)))}</td>"
                for c in columns
            )
            + "</tr>"
            for r in self[: self.MAX_ROWS]
        )
        note = (
            "<p>all rows: " + html.escape(", ".join(f"{k}={v}" for k, v in shared.items()))
            if shared
            else ""
        )
        more = f"<p>… {len(self) - self.MAX_ROWS} more rows" if len(self) > self.MAX_ROWS else ""
        return f"{note}<table><tr>{head}</tr>{body}</table>{more}"

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Table.to_pandas() needs pandas, an optional dependency: pip install pandas "
                "(or use to_csv / to_json)"
            ) from None
        return pd.DataFrame(list(self), columns=self.columns)

    #: True when Ctrl+C stopped the sweep that made it: the rows are the runs made so far.
    interrupted: bool = False

    @property
    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for row in self:
            names.update(dict.fromkeys(row))
        return list(names)

    def column(self, name: str) -> list:
        """All values of one column (``None`` where a row lacks it)."""
        return [row.get(name) for row in self]

    def where(self, **conditions) -> Table:
        """The rows whose columns equal the given values."""
        return Table(r for r in self if all(r.get(k) == v for k, v in conditions.items()))

    def to_csv(self, path) -> Path:
        """Write the table as CSV (one header row, one row per run)."""
        path = Path(path)
        columns = self.columns
        with atomic_write(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in self:
                writer.writerow([_csv_cell(row.get(c, "")) for c in columns])
        return path

    def to_json(self, path=None) -> str:
        """The table as a JSON list of objects; also written to ``path`` if given."""
        text = json.dumps(_jsonable(list(self)), indent=1)
        if path is not None:
            write_text(path, text)
        return text


class Columns:
    """Rows of the same fields as columns: the field names once, then per field either one
    value every row holds (the same object, or floats of the same bits) or a list with one
    value per row. A Ray task ships its chunk's rows so (smaller than pickled dicts, and
    read back without a Python step per row); a :class:`Table` made of such blocks builds
    no row dict until a row is asked for. Rows of different fields are kept as they are
    (``plain``)."""

    __slots__ = ("names", "shared", "varying", "columns", "count", "plain")

    def __init__(self, names, shared, varying, columns, count, plain=None):
        self.names, self.shared, self.varying = names, shared, varying
        self.columns, self.count, self.plain = columns, count, plain

    @classmethod
    def pack(cls, rows: list[dict]) -> Columns:
        names = tuple(rows[0])
        if not all(map(names.__eq__, map(tuple, rows))):  # rows of different fields
            return cls(names, {}, [], [], len(rows), plain=rows)
        shared, varying, columns = {}, [], []
        for name in names:
            column = [row[name] for row in rows]
            if _one_value(column):
                shared[name] = column[0]
            else:
                varying.append(name)
                columns.append(_compact(column))
        return cls(names, shared, varying, columns, len(rows))

    def __len__(self) -> int:
        return self.count

    def rows(self) -> list[dict]:
        """The rows, equal to the packed ones field for field, in the same key order: one
        template dict copied per row, then the varying fields set one field at a time, in
        C loops (no Python step per row)."""
        if self.plain is not None:
            return self.plain
        template = {name: self.shared.get(name) for name in self.names}
        rows = list(map(dict.copy, itertools.repeat(template, self.count)))
        for name, column in zip(self.varying, self.columns, strict=True):
            values = column.tolist() if isinstance(column, np.ndarray) else column
            any(map(operator.setitem, rows, itertools.repeat(name), values))  # each gives None
        return rows

    def column(self, name: str) -> list:
        """One field's values (``None`` where a row lacks it), without building rows."""
        if self.plain is not None:
            return [row.get(name) for row in self.plain]
        if name in self.shared:
            return [self.shared[name]] * self.count
        if name in self.varying:
            column = self.columns[self.varying.index(name)]
            return column.tolist() if isinstance(column, np.ndarray) else list(column)
        return [None] * self.count

    def __getstate__(self):
        return (self.names, self.shared, self.varying, self.columns, self.count, self.plain)

    def __setstate__(self, state):
        self.names, self.shared, self.varying, self.columns, self.count, self.plain = state
        # An array unpickled from Ray's object store is a view of the task's whole result
        # (its store records included), which it would keep pinned there: copy it out.
        self.columns = [
            np.array(c) if isinstance(c, np.ndarray) and c.base is not None else c
            for c in self.columns
        ]


def _one_value(column: list) -> bool:
    """Whether every entry of ``column`` is the first one: the same object, or floats of
    the same bits (so 0.0 and -0.0, or two NaNs, stay apart as pickle would keep them)."""
    first = column[0]
    if all(map(operator.is_, column, itertools.repeat(first))):
        return True
    if type(first) is not float or any(type(v) is not float for v in column):
        return False
    bits = np.array(column, dtype=np.float64).view(np.uint64)
    return bool((bits == bits[0]).all())


def _compact(column: list):
    """A column of Python floats (or ints of 64 bits) as a NumPy array, which pickles as one
    buffer (Ray ships it without copying) and gives back the same values, bit for bit and of
    the same type, by ``tolist()``; any other column as it is."""
    kinds = set(map(type, column))
    if kinds == {float}:
        return np.array(column, dtype=np.float64)
    if kinds == {int}:
        try:
            return np.array(column, dtype=np.int64)
        except OverflowError:  # a bigger int: kept as Python's
            pass
    return column


def _block_names(block) -> list:
    """A block's field names in row order (a list of dicts, or :class:`Columns`)."""
    if isinstance(block, Columns) and block.plain is None:
        return list(block.names)
    names: dict[str, None] = {}
    for row in block.plain if isinstance(block, Columns) else block:
        names.update(dict.fromkeys(row))
    return list(names)


class _LazyTable(Table):
    """A :class:`Table` whose rows are still blocks (:class:`Columns` or lists of dicts):
    its length, ``columns`` and ``column(name)`` are read from the blocks; anything else
    first builds the row dicts, once, and turns the object into a plain :class:`Table`
    (its class is switched, so from then on it is exactly one, with no cost per access).

    Code that calls ``list``'s own methods on it (``list.__getitem__(table, 0)``), or C code
    that reads a list's storage directly, sees no rows before they are built (``list(table)``
    builds them). Operators, ``len``/``list``/``sorted``/``reversed``, ``copy``, ``pickle``,
    ``json.dumps``, ``np.array`` and ``pandas.DataFrame`` go through the methods here
    (``tests/run/test_table_columns.py``)."""

    def __len__(self) -> int:
        return self.__dict__["_count"]

    @property
    def columns(self) -> list[str]:
        names: dict[str, None] = {}
        for block in self.__dict__["_blocks"]:
            names.update(dict.fromkeys(_block_names(block)))
        return list(names)

    def column(self, name: str) -> list:
        """All values of one column (``None`` where a row lacks it)."""
        out: list = []
        for block in self.__dict__["_blocks"]:
            if isinstance(block, Columns):
                out += block.column(name)
            else:
                out += [row.get(name) for row in block]
        return out

    def _build(self) -> None:
        blocks = self.__dict__.pop("_blocks")
        del self.__dict__["_count"]
        rows = [b.rows() if isinstance(b, Columns) else b for b in blocks]
        list.extend(self, itertools.chain.from_iterable(rows))
        self.__class__ = Table  # type: ignore[assignment]  # the plain class, from now on

    def __radd__(self, other):  # [...] + table: list's own __add__ would read no rows
        if "_blocks" in self.__dict__:
            self._build()
        return other + self


def _building(name: str):
    """A method of :class:`_LazyTable` that builds the rows, then runs ``Table``'s own."""

    def method(self, *args, **kwargs):
        if "_blocks" in self.__dict__:  # (a method looked up before another one built them)
            _LazyTable._build(self)
        return getattr(self, name)(*args, **kwargs)

    method.__name__ = name
    return method


for _name in (
    "__iter__ __getitem__ __setitem__ __delitem__ __contains__ __reversed__ "
    "__eq__ __ne__ __lt__ __le__ __gt__ __ge__ __add__ __iadd__ __mul__ __rmul__ __imul__ "
    "__reduce__ __reduce_ex__ __sizeof__ "
    "append extend insert pop remove index count sort reverse clear copy"
).split():
    setattr(_LazyTable, _name, _building(_name))
del _name


class RunSet(list):
    """Several runs made at once by :func:`steplab.minimize` (a list of :class:`Run`)."""

    def table(self) -> Table:
        """One summary row per run."""
        return Table(run.summary() for run in self)

    def to_csv(self, path) -> Path:
        """The summary table as CSV."""
        return self.table().to_csv(path)

    def to_pandas(self):
        """The summary table as a ``pandas.DataFrame`` (pandas is optional)."""
        return self.table().to_pandas()

    def plot(self, ax=None, *, y: str = "loss", x: str = "step"):
        """Every run's ``y`` against ``x`` in one panel, labelled by its hyperparameters
        (``steplab.viz.run_figure`` draws it)."""
        return _draw_runs({run.label(): run for run in self}, ax=ax, y=y, x=x)


def _draw_runs(runs: dict, **options):
    """The figure of ``runs`` (label -> run), drawn by the plotting layer, which the package
    root names as the provider of "plot runs" (this layer never imports it)."""
    draw = _plugins.provided("plot runs")
    if draw is None:
        raise RuntimeError("no plotting layer is registered for Run.plot; use steplab.viz")
    return draw(runs, **options)


EDGE_NOTE = "at the grid's edge: widen it"


def best_at_edge(values, names=None, *, maximize: bool = False) -> list[str]:
    """The axes of a grid of results (NaN/inf: diverged) along which the best value — the
    smallest, or the largest with ``maximize`` (accuracies) — sits on the first or last grid
    point, where the true optimum may lie outside the grid. Axes with fewer than three values
    never count. Returns the axes' names (``names``, default ``"axis 0"``, …), empty when the
    best is inside or nothing finished.
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return []
    shown = np.where(finite, values, np.nan)
    pick = np.nanargmax(shown) if maximize else np.nanargmin(shown)
    best = np.unravel_index(int(pick), values.shape)
    names = list(names) if names is not None else [f"axis {i}" for i in range(values.ndim)]
    return [
        names[axis]
        for axis, (i, n) in enumerate(zip(best, values.shape, strict=True))
        if n >= 3 and i in (0, n - 1)
    ]
