"""`gpuforge profiles`: what each profile runs."""

from __future__ import annotations

from toolkit.cli.common import JsonOpt, host_table


def profiles(as_json: JsonOpt = False) -> None:
    """List the profiles with their purpose, playbook and roles."""
    from toolkit.console import emit_json
    from toolkit.paths import content_root
    from toolkit.profiles import load_profiles

    items = load_profiles()
    if as_json:
        emit_json([{"name": p.name, "description": p.description,
                    "playbook": str(p.playbook.relative_to(content_root())),
                    "roles": list(p.roles)} for p in items.values()])
        return
    host_table("profiles", [[p.name, p.description, ", ".join(p.roles)]
                            for p in items.values()], ["profile", "purpose", "roles"])
