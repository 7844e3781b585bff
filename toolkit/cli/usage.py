"""`gpuforge usage`: requests and tokens per key, model or host, from the gateways' logs.

The CLI runs `playbooks/usage.yml` through the recorded-run path (check, run, record), like
`gpuforge facts`: the collection's gateway_usage module sums each host's metrics log there and
the CLI merges the hosts' sums from the run's record. It never opens a connection of its own.
"""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import InventoryOpt, JsonOpt, LimitOpt, inventories_or_default

USAGE_ACTIONS = ("gpuforge.infra.gateway_usage", "gateway_usage")
# The fact the gateway_usage module publishes on each host.
USAGE_FACT = "gpuforge_usage"

SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="Only requests since an ISO 8601 time (UTC without an offset) or a span "
                    "back from now: 30m, 1h, 1d, 2w. Default: everything logged.")]
ByOpt = Annotated[str, typer.Option("--by", help="Group by key, model or host.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")]


def usage(inventory: InventoryOpt = None, limit: LimitOpt = None, since: SinceOpt = None,
          by: ByOpt = "key", as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """Sum requests and prompt/completion tokens per key, model or host (read-only)."""
    from toolkit.cli.common import end_read_only_run, host_table
    from toolkit.console import emit_json, err
    from toolkit.errors import InvalidInput
    from toolkit.paths import content_root
    from toolkit.profiles import Profile
    from toolkit.recorded_run import run_profile
    from toolkit.usage import GROUPS, group, host_rows, parse_since, table_rows, to_csv, totals

    if by not in GROUPS:
        raise InvalidInput(f"--by {by!r}: one of {', '.join(GROUPS)}")
    if as_json and as_csv:
        raise InvalidInput("--json and --csv: choose one")
    start = parse_since(since)
    read_only = Profile(name="usage", description="gateway usage per key (read-only)",
                        playbook=content_root() / "playbooks" / "usage.yml", roles=(),
                        validate={})
    outcome = run_profile(
        command="usage", profile=read_only, inventories=inventories_or_default(inventory),
        limit=limit, tags=None, check=False, quiet=True, lock=False,
        extravars={"gpuforge_usage_since": start.isoformat() if start else ""},
        published_facts={USAGE_FACT: USAGE_ACTIONS})
    result = outcome.result
    found = {host: facts[USAGE_FACT] for host, facts in sorted(result.summary.facts.items())
             if isinstance(facts.get(USAGE_FACT), dict)}
    groups = group(host_rows(found), by)
    failures = result.summary.failures
    without_log = sorted(h for h, f in found.items() if not f.get("log_found"))
    if as_json:
        emit_json({"ok": not failures and result.rc == 0, "by": by,
                   "since": start.isoformat() if start else None, "groups": groups,
                   "totals": totals(groups), "hosts_without_gateway_log": without_log,
                   "failures": [{"host": f.host, "message": f.message} for f in failures]})
    elif as_csv:
        typer.echo(to_csv(groups, by), nl=False)
    else:
        sum_ = totals(groups)
        host_table(f"usage by {by}" + (f" since {start.isoformat()}" if start else "")
                   + f": {sum_['requests']} requests, {sum_['prompt_tokens']} prompt + "
                   f"{sum_['completion_tokens']} completion tokens",
                   table_rows(groups, by),
                   [by, "requests", "failed", "prompt tokens", "completion tokens",
                    "without usage", "mean latency s", "mean TTFT s"])
        if without_log:
            err().print(f"no gateway metrics log on: {', '.join(without_log)}", markup=False,
                        highlight=False)
    end_read_only_run(outcome, "usage")
