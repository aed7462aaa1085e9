"""Sub-commands of ``cryotiger`` (one module each, see engine/cli.py)."""
