"""``python -m voisin``: the ``voisin`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="python -m voisin")
