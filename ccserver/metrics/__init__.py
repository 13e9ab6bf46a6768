"""Prometheus metrics on the controller's `/metrics`: `instruments` (counters and histograms
updated as things happen; a leaf every layer may import) and `collector` (gauges read from
the running center at scrape time). `docs/observability.md` lists them."""
