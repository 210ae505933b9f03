"""``python -m mappo_td``: the ``mappo-td`` command."""

from mappo_td.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
