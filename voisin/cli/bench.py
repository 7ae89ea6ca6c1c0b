"""``voisin bench``: the benchmark harness's command (voisin.bench.command), or one that says what is missing."""

from __future__ import annotations

import click


def make() -> click.Command:
    # The harness has heavier dependencies (h5py, the peers); a missing one must
    # not take the rest of the CLI down with it.
    try:
        from voisin.bench.command import bench
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing.startswith("voisin"):
            hint = "this voisin has no benchmark runner (voisin.bench.command is missing)"
        else:
            hint = (f"`voisin bench` needs the bench extra ({exc}); install it with "
                    "pip install -e \".[bench]\"")

        @click.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                       add_help_option=False)
        def unavailable() -> None:
            """Benchmarks (needs the bench extra: pip install -e ".[bench]")."""
            raise click.ClickException(hint)
        return unavailable
    return bench


command = make()
