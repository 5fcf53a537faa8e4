"""``baton serve``: placeholder until textual-serve is wired (see below)."""
