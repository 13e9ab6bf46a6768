"""Reference IVR flows (YAML) and their schema."""
