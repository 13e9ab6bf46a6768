"""IVR flows: what callers hear and press before they reach an agent.

A flow is a YAML file in `ivr_flows/` serving one or more dialled numbers::

    flow: "95598"
    numbers: ["95598"]
    language: zh              # prompts speak `text` (Mandarin); `set language: en` → `text_en`
    start: welcome
    nodes:
      welcome: {kind: play, prompt: {text: 欢迎致电, text_en: Welcome}, next: main_menu}
      main_menu:
        kind: menu
        prompt: 报修请按2，人工服务请按0。
        options: {2: repair, 0: agent}
        tries: 3              # invalid or silent entries before on_fail
        on_fail: agent
      repair: {kind: queue, queue: repair, priority: 10, after_agent: survey}
      ...

Node kinds: `play` (a prompt, or the active outage notices), `menu` (one key → node),
`collect` (digits into a variable), `lookup` (HTTP GET → variables; `on_miss`, `on_error`),
`say` (a sentence with `{balance:money}`, `{due:date}`, `{n:number}`, `{acct:digits}`),
`set` (variables, queue, priority, language), `branch` (variables, business hours,
holidays, active notices, visit counts), `queue`, `callback_offer`, `transfer`, `survey`
and `hangup`. A prompt is a string, `{text, text_en}` or `{file}`; its audio is generated
by `ccserver.prompts` and cached by content hash.

Modules: `model` (the schema), `loader` (read, check with file:line errors, warm prompts),
`interpreter` (run a flow for one call over a `channel.FlowChannel`), `say` (numbers,
money, dates in words), `lookup` (the HTTP call), `notices` (outage notices in Redis),
`config` (the `[ivr]` section), `billing_demo` (a demo billing backend). The operator's
guide is `docs/ivr.md`.
"""
