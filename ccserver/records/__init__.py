"""The service records a call leaves behind: work orders (`orders`) and their chasing.

They live in the history store (`ccserver.history`: same file, same versioned migrations)
and know nothing of calls in progress or of telephony: call control, the API and the CLI
use them, never the other way round.
"""
