"""The command lines (``python -m tools.<name>``): each parses its arguments and calls the library in
``experiments/`` or ``engine/``; nothing outside ``tools/`` imports them."""
