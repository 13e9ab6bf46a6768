"""Call control: everything the controller does with a call over ARI, from the caller's
Stasis entry to the record in the history. `docs/architecture.md` draws the path of one
inbound call through these modules and states the import rules they follow (checked by
import-linter in `make lint` and `make test`).

- `model` — the `Call`, its states and legal moves, outcomes, the ids we give Asterisk.
- `center` — the registry of calls and legs, `transaction()`, the route table, tasks.
- `journal` — what is written where (Redis, history, counters). `media` — prompts, keys.
- `routing` — queues to agents' phones, RONA, the ticker. `talk` — bridged, recorded, ended.
- `queueing`, `callbacks`, `transfers`, `ivr_channel`, `inbound`, `agents`, `agent_desk`,
  `monitor` — the features. `desk`, `board` — what the desks and the wallboard show.
- `recovery` — back after a restart or a lost link. `stasis` — the route table itself.
- `phrases` — every sentence call control says.
"""
