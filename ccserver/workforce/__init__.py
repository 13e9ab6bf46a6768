"""Workforce planning: Erlang models, forecasting, staffing and the routing digital twin."""
