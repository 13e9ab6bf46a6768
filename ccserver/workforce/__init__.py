"""Workforce planning: Erlang B/C/A models, interval forecasts and staffing.

`erlang` holds the queueing formulas, `forecast` turns interval call volumes into a
forecast for the next day or week, `staffing` turns a forecast and service targets into
agents per interval and license seats, and `cli` adds the `erlang`, `forecast` and `staff`
commands. See docs/workforce.md.
"""
