"""Reading the NAB corpus: data files, labelled windows, cost profiles, detection files.

Layout (``../shared/nab``): ``data/<category>/<name>.csv`` (``timestamp,value``),
``labels/combined_windows.json`` (``{"<category>/<name>.csv": [[start, end], ...]}``),
``config/profiles.json`` (a cost matrix per profile) and
``reference_detections/<detector>/<category>/<detector>_<name>.csv``
(``timestamp,anomaly_score``). Series are keyed by their data path relative to ``data/``,
exactly as the label file keys them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gatewarden.errors import InputError

FloatArray = npt.NDArray[np.float64]
TimeArray = npt.NDArray[np.datetime64]


class NABDataError(InputError):
    """The corpus or a detection file is missing, malformed or does not match its data file."""


class CostMatrix(BaseModel):
    """One scoring profile's weights (``config/profiles.json`` spells them ``tpWeight``...)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    tp: float = Field(alias="tpWeight", gt=0)
    fp: float = Field(alias="fpWeight", ge=0)
    fn: float = Field(alias="fnWeight", ge=0)
    tn: float = Field(default=1.0, alias="tnWeight", ge=0)


@dataclass(frozen=True)
class NABSeries:
    """One data file: its rows and its labelled windows as inclusive row-index ranges."""

    name: str
    timestamps: TimeArray
    values: FloatArray
    windows: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class NABCorpus:
    root: Path
    series: dict[str, NABSeries]
    profiles: dict[str, CostMatrix]

    @property
    def n_windows(self) -> int:
        return sum(len(s.windows) for s in self.series.values())


def load_profiles(path: Path) -> dict[str, CostMatrix]:
    try:
        raw = json.loads(path.read_text())
        return {name: CostMatrix.model_validate(body["CostMatrix"]) for name, body in raw.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NABDataError(f"{path}: cannot read cost profiles: {exc}") from exc


def _read_csv(path: Path, column: str) -> tuple[TimeArray, FloatArray]:
    try:
        frame = pd.read_csv(path, usecols=["timestamp", column])
        stamps = pd.to_datetime(frame["timestamp"], format="ISO8601").to_numpy("datetime64[ns]")
        values = frame[column].to_numpy(dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise NABDataError(f"{path}: {exc}") from exc
    return stamps, values


def _window_rows(
    name: str, stamps: TimeArray, limits: list[list[str]]
) -> tuple[tuple[int, int], ...]:
    """Label windows as inclusive row ranges, sorted by start (the sweep walks them in order)."""
    rows: list[tuple[int, int]] = []
    for start, end in limits:
        lo = int(np.searchsorted(stamps, np.datetime64(pd.Timestamp(start)), side="left"))
        hi = int(np.searchsorted(stamps, np.datetime64(pd.Timestamp(end)), side="right")) - 1
        if lo > hi or lo >= len(stamps):
            raise NABDataError(f"{name}: window [{start}, {end}] covers no row")
        rows.append((lo, hi))
    return tuple(sorted(rows))


def load_corpus(root: Path) -> NABCorpus:
    """Every data file named in ``labels/combined_windows.json``, with its windows."""
    label_path = root / "labels" / "combined_windows.json"
    try:
        labels: dict[str, list[list[str]]] = json.loads(label_path.read_text())
    except (OSError, ValueError) as exc:
        raise NABDataError(f"{label_path}: {exc}") from exc
    series: dict[str, NABSeries] = {}
    for name in sorted(labels):
        stamps, values = _read_csv(root / "data" / name, "value")
        windows = _window_rows(name, stamps, labels[name])
        series[name] = NABSeries(name=name, timestamps=stamps, values=values, windows=windows)
    profiles = load_profiles(root / "config" / "profiles.json")
    return NABCorpus(root=root, series=series, profiles=profiles)


def detection_path(root: Path, detector: str, name: str) -> Path:
    """``reference_detections/<detector>/<category>/<detector>_<file>.csv`` for data ``name``."""
    category, _, filename = name.partition("/")
    return root / "reference_detections" / detector / category / f"{detector}_{filename}"


def load_detections(corpus: NABCorpus, detector: str) -> dict[str, FloatArray]:
    """One published detector's raw per-row anomaly scores, checked row for row against the data."""
    out: dict[str, FloatArray] = {}
    for name, data in corpus.series.items():
        path = detection_path(corpus.root, detector, name)
        stamps, scores = _read_csv(path, "anomaly_score")
        if stamps.shape != data.timestamps.shape or not np.array_equal(stamps, data.timestamps):
            raise NABDataError(f"{path}: rows do not match the timestamps of data/{name}")
        out[name] = scores
    return out
